# A full budget with on_full = 'queue' makes logins wait their turn: FIFO, handed the
# freed slot directly, bounded by queue_timeout and max_queue; every way out of the queue
# is clean (timeout, client gone, termination, cancel, shutdown); raising or deleting the budget admits or
# re-routes waiters at once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('queue', conf => "authentication_timeout = '60s'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE worker LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout, max_queue)
	VALUES ('extraction', 'extraction_worker', 1, 'queue', '60s', 4);
});
reload_budgets($node);
my %worker = (user => 'worker', application_name => 'extraction_worker');

# FIFO: five waiters queued in sequence get the slot in that order as it frees one by one.
my $holder = login($node, %worker);
ok($holder->{ok}, 'the first login takes the only slot');
my @waiters;
for my $n (1 .. 4)
{
	push @waiters, start_login($node, %worker);
	ok(wait_for_waiting($node, 'extraction', $n), "waiter $n is queued");
}
is($node->safe_psql('postgres',
		"SELECT string_agg(queue_position::text, ',' ORDER BY since) FROM connbudget.sessions WHERE state = 'waiting'"),
	'1,2,3,4', 'sessions shows the queue positions in arrival order');
my $full = login($node, %worker);
is($full->{sqlstate}, '53300', 'a login beyond max_queue is refused at once');
is($full->{message}, 'connection budget "extraction" is full and its queue is full', 'with the queue-full message');
is($full->{detail}, '1 of 1 connections in use, 4 logins waiting.', 'and the counts');

my $current = $holder;
for my $n (0 .. 3)
{
	ok(!answered($_, 0.2), 'nobody is admitted while the slot is held') for @waiters[$n .. 3];
	logout($current);
	my $admitted = finish_login($waiters[$n]);
	ok($admitted->{ok}, "waiter " . ($n + 1) . " is admitted when the slot frees");
	ok(!answered($_, 0.2), 'the others keep waiting: one release wakes one waiter') for @waiters[$n + 1 .. 3];
	$current = $admitted;
}
my $status = status_of($node);
is($status->{extraction}{queued}, 4, 'status counts 4 queued');
is($status->{extraction}{waiting}, 0, 'and none waiting now');
is($status->{extraction}{admitted}, 5, 'and 5 admitted');

# Timeout: FATAL 53300 with the time waited; the slot holder is undisturbed.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET queue_timeout = '300ms' WHERE name = 'extraction'");
reload_budgets($node);
my $timed_out = login($node, %worker);
is($timed_out->{sqlstate}, '53300', 'a waiter that times out gets SQLSTATE 53300');
is($timed_out->{message}, 'timed out waiting for a slot in connection budget "extraction"', 'and the timeout message');
like($timed_out->{detail}, qr/^waited \d+ ms; 1 of 1 connections in use\.$/, 'saying how long it waited');
is(status_of($node)->{extraction}{timed_out}, 1, 'status counts it timed out');

# A client that goes away leaves the queue at once and takes no slot.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET queue_timeout = '60s' WHERE name = 'extraction'");
reload_budgets($node);
my $quitter = start_login($node, %worker);
ok(wait_for_waiting($node, 'extraction', 1), 'a waiter is queued');
close $quitter->{socket};
ok(wait_for_waiting($node, 'extraction', 0), 'closing its socket takes it out of the queue');
is(status_of($node)->{extraction}{abandoned}, 1, 'counted as abandoned');
unlike(slurp_file($node->logfile), qr/could not send data to client/,
	'the server does not try to tell the client that went away (no "Broken pipe" in the log)');
logout($current);
ok(wait_for_active($node, 'extraction', 0), 'the abandoned waiter consumed no slot');
$current = login($node, %worker);
ok($current->{ok}, 'the slot goes to the next login');

# pg_terminate_backend of a waiter.
my $victim = start_login($node, %worker);
ok(wait_for_waiting($node, 'extraction', 1), 'another waiter is queued');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM connbudget.sessions WHERE state = 'waiting'");
my $terminated = finish_login($victim);
is($terminated->{sqlstate}, '57P01', 'a terminated waiter gets admin_shutdown');
is($terminated->{message}, 'terminating a login that waited for a slot in connection budget "extraction"',
	'with a message that says so');
ok(wait_for_waiting($node, 'extraction', 0), 'and leaves the queue');
is(status_of($node)->{extraction}{active}, 1, 'the slot holder is untouched');

# pg_cancel_backend of a waiter ends it too, saying so, counted as terminated.
my $canceled_waiter = start_login($node, %worker);
ok(wait_for_waiting($node, 'extraction', 1), 'another waiter is queued');
my $terminated_before = $node->safe_psql('postgres', q{SELECT terminated || '/' || abandoned FROM connbudget.status WHERE budget = 'extraction'});
$node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM connbudget.sessions WHERE state = 'waiting'");
my $canceled = finish_login($canceled_waiter);
is($canceled->{sqlstate}, '57014', 'a canceled waiter gets query_canceled');
is($canceled->{message}, 'canceling a login that waited for a slot in connection budget "extraction"',
	'with a message naming the budget');
my ($terminated_count, $abandoned_count) = split m{/}, $terminated_before;
is($node->safe_psql('postgres', q{SELECT terminated || '/' || abandoned FROM connbudget.status WHERE budget = 'extraction'}),
	($terminated_count + 1) . "/$abandoned_count", 'counted as terminated, not abandoned');

# A waiting login does not hold back VACUUM: it holds no snapshot while it waits. (Before
# it has a database, it counts only for the horizon of shared catalogs such as pg_authid.)
my $holdout = start_login($node, %worker);
ok(wait_for_waiting($node, 'extraction', 1), 'a login waits');
$node->safe_psql('postgres', 'CREATE ROLE churn; DROP ROLE churn;');
my (undef, undef, $vacuum_log) = $node->psql('postgres', 'VACUUM (VERBOSE) pg_authid');
like($vacuum_log, qr/tuples: [1-9]\d* removed, \d+ remain, 0 are dead but not yet removable/,
	'VACUUM removes a role dropped while the login waits');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM connbudget.sessions WHERE state = 'waiting'");
finish_login($holdout);
ok(wait_for_waiting($node, 'extraction', 0), 'the queue is empty again');

# Raising max_connections admits waiters at once; deleting the budget re-routes them.
my @raised;
for my $n (1 .. 3)
{
	push @raised, start_login($node, %worker);
	ok(wait_for_waiting($node, 'extraction', $n), "waiter $n of 3 is queued");
}
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET max_connections = 3 WHERE name = 'extraction'");
ok(finish_login($raised[0])->{ok} && finish_login($raised[1])->{ok}, 'raising the limit to 3 admits two waiters');
ok(!answered($raised[2], 0.3), 'and the third keeps waiting');
$node->safe_psql('postgres', "DELETE FROM connbudget.budgets WHERE name = 'extraction'");
ok(finish_login($raised[2])->{ok}, 'deleting the budget re-routes its waiter to default, which admits it');

# 500 queued logins through a budget of 5, each client holding its session a few ms.
$node->safe_psql('postgres', q{
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout, max_queue)
	VALUES ('burst', 'burst', 5, 'queue', '60s', 50);
	SELECT connbudget.reset_stats();
});
reload_budgets($node);
my $script = $node->basedir . '/hold.sql';
PostgreSQL::Test::Utils::append_to_file($script, "SELECT pg_sleep(0.005);\n");
{
	local $ENV{PGAPPNAME} = 'burst';
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGUSER} = 'worker';
	my ($stdout, $stderr) = ('', '');
	# One thread per client: pgbench -C connects synchronously, so a thread whose client
	# waits in the queue would stall the other clients of that thread, slot holders too.
	IPC::Run::run([ 'pgbench', '-n', '-C', '-c', '20', '-j', '20', '-t', '25', '-f', $script, 'postgres' ],
		'>', \$stdout, '2>', \$stderr);
	like($stdout, qr/number of transactions actually processed: 500\/500/, 'pgbench ran 500 logins through the queue');
	unlike($stderr, qr/connection budget/, 'none was refused or timed out');
}
ok(wait_for_active($node, 'burst', 0), 'active is back to 0');
$status = status_of($node)->{burst};
is($status->{waiting}, 0, 'waiting is back to 0');
# Attempts: pgbench's own first connection, then one per transaction.
is($status->{admitted} + $status->{rejected} + $status->{timed_out} + $status->{abandoned}, 501,
	'admitted + rejected + timed_out + abandoned = attempts');
ok($status->{queued} > 0, "logins did queue ($status->{queued} of 500)");
ok($status->{peak} <= 5, 'the budget never held more than 5');
my $handoff = $node->safe_psql('postgres',
	"SELECT count || ' handoffs, median ' || round(p50_us::numeric) || ' us, p99 ' || round(p99_us::numeric) || ' us' FROM connbudget.latency WHERE measure = 'handoff'");
note "handoff latency: $handoff";
ok($handoff =~ /^(\d+) handoffs/ && $1 > 0, 'handoffs were measured');

logout($current);
# A fast shutdown while logins wait: each ends with its own message, none silently, even
# the ones whose slot comes as the sessions before them end; none counts as admitted.
$node->safe_psql('postgres', q{
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout)
	VALUES ('last', 'last', 1, 'queue', '60s');
});
reload_budgets($node);
my $last_holder = login($node, user => 'worker', application_name => 'last');
my @last_waiters = map { start_login($node, user => 'worker', application_name => 'last') } 1 .. 3;
ok(wait_for_waiting($node, 'last', 3), 'three logins wait');
$node->stop('fast');
my @ended = map { finish_login($_) } @last_waiters;
is(scalar(grep { ($_->{message} // '') eq 'terminating a login that waited for a slot in connection budget "last"' } @ended), 3,
	'at a fast shutdown every waiting login is told why it ends')
  or diag explain \@ended;
$node->start;
is($node->safe_psql('postgres', q{SELECT admitted || '/' || terminated FROM connbudget.status WHERE budget = 'last'}),
	'1/3', 'counted (the counters survive the clean shutdown): one admitted, three terminated');

$node->stop;
done_testing();

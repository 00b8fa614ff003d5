# Reservations and priority, in the seed's scenario at reduced scale: max_connections 40
# (37 for ordinary logins), the API backend reserves 8, three worker budgets of 20 queue.
# Workers scaled past capacity cannot take the API's slots; a queued login holds a backend
# too, so it may only wait where it could be admitted; a higher-priority login takes the
# place of a lower-priority waiter; superusers always get in. Every backend counts here, so
# the test watches the server through one superuser session held from start to end (no
# psql comes and goes), and waits for a backend to exit before counting on its slot.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('reservations');    # max_connections 40, superuser_reserved 3
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved, on_full, queue_timeout, priority) VALUES
	  ('api',        'backend',           10, 8, 'reject', NULL,  0),
	  ('extraction', 'extraction_worker', 20, 0, 'queue',  '60s', 3),
	  ('semantic',   'semantic_worker',   20, 0, 'queue',  '60s', 2),
	  ('event',      'event_worker',      20, 0, 'queue',  '60s', 1);
});
reload_budgets($node);
is($node->safe_psql('postgres', 'SELECT capacity FROM connbudget.worker'), '37', 'capacity is 40 - 3');
my $monitor = login($node);    # a superuser: counted under exempt, holds one backend
ok(poll_until($monitor, "SELECT active = 1 FROM connbudget.status WHERE budget = 'exempt'"),
	'the monitoring session is the only other backend');

# Workers scale to 12 logins each while the API is idle: together they get 37 - 1 - 8 = 28.
my (@workers, @refused);
for my $app (qw(extraction_worker semantic_worker event_worker))
{
	for (1 .. 12)
	{
		my $session = login($node, user => 'app', application_name => $app);
		$session->{ok} ? push(@workers, $session) : push(@refused, $session);
	}
}
is(scalar @workers, 28, 'the workers get 28 connections: an idle reservation of 8 blocks no more than 8');
is(scalar @refused, 8, 'the other 8 are refused at once although their budgets queue');
is($refused[0]{sqlstate}, '53300', 'with SQLSTATE 53300');
is($refused[0]{message}, 'remaining connections are reserved for other connection budgets',
	'and the reservation message');
like($refused[0]{detail},
	qr/^Connection budget "event" holds \d+ of its 20 connections \(0 reserved\), 0 logins wait for it; 8 of the server's 37 connections are free and 8 of them are reserved for other budgets\.$/,
	'whose detail gives the numbers');

# The API backend still logs in 8 times, while the workers hold everything else.
my @api = map { login($node, user => 'app', application_name => 'backend') } 1 .. 8;
is(scalar(grep { $_->{ok} } @api), 8, 'the API backend logs in 8 times');
my $ninth = login($node, user => 'app', application_name => 'backend');
is($ninth->{message}, 'the server has no connection left for connection budget "api"',
	'its ninth login would need shared capacity, and the server has none left');
like($ninth->{detail},
	qr/^All 37 of the server's connections for ordinary logins are in use: 36 by sessions of connection budgets, 0 by logins waiting in a queue, 0 by logins still starting or ending, 1 by superusers\. superuser_reserved_connections keeps 3 more for superusers\.$/,
	'and says who holds them');
my $superuser = login($node, application_name => 'backend');
ok($superuser->{ok}, 'a superuser still logs in');
ok(logout_and_wait($superuser), 'and leaves');
my $explained = query($monitor,
	q{SELECT verdict || ' / ' || server_in_use || ' of ' || server_capacity FROM connbudget.explain('semantic_worker', 'app', 'postgres')})->{rows}[0][0] // '';
is($explained, 'refuse: server full / 37 of 37', "explain() says why a worker is refused");
my $status = query($monitor,
	q{SELECT reserved_in_use || '/' || server_free FROM connbudget.status WHERE budget = 'api'})->{rows}[0][0] // '';
is($status, '8/0', 'status: the API uses its 8 reserved slots, nothing is free');

# Shared capacity freed by a worker is open to anyone; reserved capacity is not.
ok(logout_and_wait(pop @api), 'an API session ends');
my $worker_try = login($node, user => 'app', application_name => 'event_worker');
is($worker_try->{message}, 'remaining connections are reserved for other connection budgets',
	"the API's freed slot stays reserved for it");
push @api, login($node, user => 'app', application_name => 'backend');
ok($api[-1]{ok}, 'and the API takes it back');
ok(logout_and_wait(pop @workers), 'a worker session ends');
my $taker = login($node, user => 'app', application_name => 'event_worker');
ok($taker->{ok}, "a worker's freed slot goes to the next worker");
push @workers, $taker;
ConnBudgetTest::logout($_) for @workers, @api;
ok(wait_for_active($monitor, $_, 0), "every $_ session has left") for qw(api extraction semantic event);
ok(wait_for_exit($_->{pid}), 'and exited') for @workers, @api;

# Priority: queued logins hold backends; when the server is full, a login of a
# higher-priority budget takes the place of the youngest waiter of the lowest priority.
for my $sql (
	q{UPDATE connbudget.budgets SET max_connections = 10 WHERE name = 'event'},
	q{UPDATE connbudget.budgets SET max_connections = 5 WHERE name = 'semantic'},
	q{SELECT connbudget.reset_stats()},
	q{SELECT connbudget.reload()})
{
	my $result = query($monitor, $sql);
	ok($result->{ok}, $sql) or diag explain $result;
}
my @event = map { login($node, user => 'app', application_name => 'event_worker') } 1 .. 10;
my @semantic = map { login($node, user => 'app', application_name => 'semantic_worker') } 1 .. 5;
my @queued;
for my $n (1 .. 13)    # 1 + 10 + 5 + 13 = 29: all shared capacity
{
	my $app = $n <= 10 ? 'event_worker' : 'semantic_worker';
	push @queued, start_login($node, user => 'app', application_name => $app);
	# One at a time, so that the queue order is the order started.
	my $queued = wait_for_waiting($monitor, $n <= 10 ? 'event' : 'semantic', $n <= 10 ? $n : $n - 10);
	ok($queued, "waiter $n is queued") if $n == 10 || $n == 13;
}
# The API takes its 8 reserved slots too: now every backend for ordinary logins is in use.
my @api_full = map { login($node, user => 'app', application_name => 'backend') } 1 .. 8;
is(scalar(grep { $_->{ok} } @api_full), 8, 'the API logs in 8 times while workers fill the rest');
my $high = login($node, user => 'app', application_name => 'extraction_worker');
ok($high->{ok}, 'an extraction login (priority 3) gets in although the server is full')
  or diag explain $high;
my $displaced = finish_login($queued[9]);    # the youngest event waiter (priority 1)
is($displaced->{sqlstate}, '53300', 'the youngest waiter of the lowest priority gives its place');
like($displaced->{detail},
	qr/queue of connection budget "event" and gave its place to a login of budget "extraction", which has a higher priority/,
	'and is told why');
ok(!answered($queued[12], 0.2), 'a semantic waiter (priority 2) keeps its place');
my $second = login($node, user => 'app', application_name => 'extraction_worker');
ok($second->{ok}, 'the next extraction login displaces the next event waiter');
is(finish_login($queued[8])->{sqlstate}, '53300', 'which is the next youngest event waiter');
is(query($monitor, q{SELECT rejected FROM connbudget.status WHERE budget = 'event'})->{rows}[0][0], '2',
	'displaced waiters are counted as rejected');
my $lowest = login($node, user => 'app', application_name => 'event_worker');
is($lowest->{message}, 'the server has no connection left for connection budget "event"',
	'an event login (the lowest priority) displaces nobody and is refused');

ConnBudgetTest::logout($_) for @event, @semantic, $high, $second, @api_full;
for my $waiter (@queued[0 .. 7, 10 .. 12])
{
	my $r = finish_login($waiter);
	ConnBudgetTest::logout($r) if $r->{ok};
}
for my $budget (qw(event semantic extraction))
{
	ok(wait_for_active($monitor, $budget, 0) && wait_for_waiting($monitor, $budget, 0), "$budget is empty again");
}
ConnBudgetTest::logout($monitor);

# A server that shrank below the reservations: the worker loads what it can and says so.
$node->safe_psql('postgres', q{
	UPDATE connbudget.budgets SET reserved = 20 WHERE name = 'extraction';
});
my $log_offset = -s $node->logfile;
$node->append_conf('postgresql.conf', "max_connections = 23\n");
$node->restart;
ok($node->wait_for_log(
		qr/WARNING:  pg_connbudget: the budgets reserve 8 connections more than the server's 20 can honour/,
		$log_offset),
	'after max_connections shrank, the worker logs the shortfall');
is($node->safe_psql('postgres', 'SELECT reservation_shortfall FROM connbudget.worker'), '8',
	'and connbudget.worker shows it');
is($node->safe_psql('postgres', q{SELECT reserved || ' reserved, ' || reserved_cut || ' cut' FROM connbudget.status WHERE budget = 'extraction'}),
	'20 reserved, 8 cut', 'and status shows which budget lost how much (match order: api first)');
ok(login($node, user => 'app', application_name => 'backend')->{ok}, 'the first reservation (api) still holds');

$node->stop;
done_testing();

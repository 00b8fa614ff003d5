# connbudget.status counts what happened to each budget's logins: refusals by reason,
# timeouts, waiters that left or were terminated, waits by length, the peak and when it was
# reached, the last refusal, and in monitor mode what enforcement would have done. The
# counters survive a clean restart and start from zero after a crash.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('counters', conf => "authentication_timeout = '60s'\nrestart_after_crash = on\n");
$node->safe_psql('postgres', q{
	CREATE ROLE worker LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout, max_queue, mode)
	VALUES ('full', 'full', 1, 'reject', NULL, NULL, 'enforce'),
	       ('queue', 'queue', 1, 'queue', '300ms', 1, 'enforce'),
	       ('dry', 'dry', 1, 'queue', NULL, NULL, 'monitor'),
	       ('dry_reject', 'dry_reject', 0, 'reject', NULL, NULL, 'monitor');
});
reload_budgets($node);

sub counters
{
	my ($budget) = @_;
	my @columns = qw(admitted rejected rejected_full rejected_queue_full timed_out abandoned terminated
	  would_reject would_queue waits peak);
	my $row = $node->safe_psql('postgres',
		'SELECT ' . join(', ', @columns) . " FROM connbudget.status WHERE budget = '$budget'");
	my %c;
	@c{@columns} = split /\|/, $row, -1;
	return \%c;
}

# Refusals by reason.
my $full_holder = login($node, user => 'worker', application_name => 'full');
login($node, user => 'worker', application_name => 'full') for 1 .. 2;
my $full = counters('full');
is($full->{rejected_full}, 2, 'a full rejecting budget counts rejected_full');
is($full->{rejected}, 2, 'rejected is the total of the reasons');
is($node->safe_psql('postgres',
		"SELECT last_refusal_at BETWEEN now() - interval '1 minute' AND clock_timestamp() FROM connbudget.status WHERE budget = 'full'"),
	't', 'last_refusal_at is the time of the last refusal');

my $queue_holder = login($node, user => 'worker', application_name => 'queue');
my $waiter = start_login($node, user => 'worker', application_name => 'queue');
ok(wait_for_waiting($node, 'queue', 1), 'a login waits in the queue');
is(login($node, user => 'worker', application_name => 'queue')->{message},
	'connection budget "queue" is full and its queue is full', 'the next finds the queue full');
is(finish_login($waiter)->{message}, 'timed out waiting for a slot in connection budget "queue"',
	'the waiter times out');
my $queue = counters('queue');
is($queue->{rejected_queue_full}, 1, 'rejected_queue_full counts the queue-full refusal');
is($queue->{timed_out}, 1, 'timed_out counts the timeout apart');
is($queue->{rejected}, 1, 'rejected does not include timeouts');

# Waiters that leave: client gone, backend terminated.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET queue_timeout = '60s' WHERE name = 'queue'");
reload_budgets($node);
my $quitter = start_login($node, user => 'worker', application_name => 'queue');
ok(wait_for_waiting($node, 'queue', 1), 'a login waits');
close $quitter->{socket};
ok(wait_for_waiting($node, 'queue', 0), 'and leaves when its client goes away');
my $victim = start_login($node, user => 'worker', application_name => 'queue');
ok(wait_for_waiting($node, 'queue', 1), 'another waits');
$node->safe_psql('postgres', "SELECT pg_terminate_backend(pid) FROM connbudget.sessions WHERE state = 'waiting'");
is(finish_login($victim)->{sqlstate}, '57P01', 'and is terminated');
$queue = counters('queue');
is($queue->{abandoned}, 1, 'abandoned counts the client that went away');
is($queue->{terminated}, 1, 'terminated counts the waiter that was terminated');

# Waits by length: a waiter admitted after ~200 ms falls in the (100 ms, 1 s] bucket.
my $patient = start_login($node, user => 'worker', application_name => 'queue');
ok(wait_for_waiting($node, 'queue', 1), 'a login waits for the slot');
select(undef, undef, undef, 0.2);
logout($queue_holder);
$queue_holder = finish_login($patient);
ok($queue_holder->{ok}, 'and is admitted when it frees');
is(counters('queue')->{waits}, 1, 'waits counts the login admitted after waiting');
is($node->safe_psql('postgres',
		"SELECT sum(waits) FILTER (WHERE le_ms <= 100) || ' ' || sum(waits) FROM connbudget.wait_histogram WHERE budget = 'queue'"),
	'0 1', 'wait_histogram puts its wait of 200 ms or more in a bucket above 100 ms');
is($node->safe_psql('postgres',
		"SELECT wait_total_ms >= 200 AND wait_total_ms = max_wait_ms FROM connbudget.status WHERE budget = 'queue'"),
	't', 'wait_total_ms adds up the waits');

# Monitor mode: admitted, and counted as what enforcement would have done.
my @dry = map { login($node, user => 'worker', application_name => 'dry') } 1 .. 3;
ok((grep { $_->{ok} } @dry) == 3, 'a monitored budget of 1 admits 3 logins');
my $dry_reject = login($node, user => 'worker', application_name => 'dry_reject');
ok($dry_reject->{ok}, 'a monitored budget of 0 admits too');
my $dry = counters('dry');
is($dry->{would_queue}, 2, 'would_queue counts the logins enforcement would have queued');
is($dry->{rejected}, 0, 'and nothing is rejected');
is($dry->{peak}, 3, 'the peak is the real one');
is(counters('dry_reject')->{would_reject}, 1, 'would_reject counts what enforcement would have refused');
like(slurp_file($node->logfile), qr/connection budget "dry" would have queued this login \(monitor mode\)/,
	'monitor mode logs what it would have done');
is($node->safe_psql('postgres', "SELECT peak_at IS NOT NULL FROM connbudget.status WHERE budget = 'dry'"),
	't', 'peak_at says when the peak was reached');
logout($_) for @dry, $dry_reject, $full_holder, $queue_holder;
ok(wait_for_active($node, 'dry', 0), 'everyone logged out');

# A clean restart keeps the counters (and stats_reset); the live counts restart from 0.
my $before = $node->safe_psql('postgres',
	"SELECT admitted, rejected, timed_out, abandoned, terminated, would_queue, waits, peak, stats_reset FROM connbudget.status WHERE budget IN ('full', 'queue', 'dry') ORDER BY budget");
my $default_before = $node->safe_psql('postgres', "SELECT admitted FROM connbudget.status WHERE budget = 'default'");
$node->restart;
reload_budgets($node);
is($node->safe_psql('postgres',
		"SELECT admitted, rejected, timed_out, abandoned, terminated, would_queue, waits, peak, stats_reset FROM connbudget.status WHERE budget IN ('full', 'queue', 'dry') ORDER BY budget"),
	$before, 'a clean restart keeps every counter');
cmp_ok($node->safe_psql('postgres', "SELECT admitted FROM connbudget.status WHERE budget = 'default'"),
	'>=', $default_before, 'default keeps its counters too');
ok(!-e $node->data_dir . '/pg_stat/pg_connbudget.stat', 'the saved file is removed once loaded');

# A crash restart starts from zero: the counters of a crashed server are not trusted.
my $psql = $node->background_psql('postgres');
my $pid = $psql->query_safe('SELECT pg_backend_pid()');
my $crash_offset = -s $node->logfile;
kill 'KILL', $pid;
$psql->quit;
ok($node->wait_for_log(qr/all server processes terminated; reinitializing/, $crash_offset),
	'the server reinitializes after the crash');
ok(wait_for_server($node), 'and accepts logins again');
reload_budgets($node);
is($node->safe_psql('postgres',
		"SELECT sum(admitted + rejected + timed_out + waits) FROM connbudget.status WHERE budget IN ('full', 'queue', 'dry')"),
	'0', 'after a crash the counters start from zero');

# reset_stats() zeroes one budget's counters and sets stats_reset.
login($node, user => 'worker', application_name => 'full') for 1 .. 2;
$node->safe_psql('postgres', "SELECT connbudget.reset_stats('full')");
is($node->safe_psql('postgres',
		"SELECT admitted, rejected, last_refusal_at IS NULL, stats_reset > now() - interval '1 minute' FROM connbudget.status WHERE budget = 'full'"),
	'0|0|t|t', 'reset_stats zeroes the counters and stamps stats_reset');

# A damaged file never stops the server: it is reported and ignored.
ok(login($node, user => 'worker', application_name => 'full')->{ok}, 'a login counted before the shutdown');
ok(wait_for_active($node, 'full', 0), 'and gone');
$node->stop;
my $stat_file = $node->data_dir . '/pg_stat/pg_connbudget.stat';
ok(-e $stat_file, 'a clean shutdown writes the counters');
open(my $damaged, '>', $stat_file) or die "cannot write $stat_file: $!";
print $damaged 'not what pg_connbudget writes' x 10;
close $damaged;
my $start_offset = -s $node->logfile;
$node->start;
ok($node->wait_for_log(qr/ignoring the rest of "pg_stat\/pg_connbudget\.stat"/, $start_offset),
	'a damaged file is reported at start');
reload_budgets($node);
is($node->safe_psql('postgres', "SELECT admitted FROM connbudget.status WHERE budget = 'full'"), '0',
	'and the counters start from zero');

$node->stop;
done_testing();

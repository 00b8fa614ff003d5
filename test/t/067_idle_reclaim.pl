# Idle reclaim: a login that must wait takes the slot of the session idle longest, outside
# any transaction, for at least its budget's idle_reclaim: first of its own (full) budget,
# then, waiting for shared capacity, of a budget above its entitlement with no higher
# priority. Sessions in a transaction or running a query are left alone, and so are the
# sessions of a budget whose idle_reclaim is NULL. The ended session is told why, with
# SQLSTATE 57P01; status, history and the server log count it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('idle_reclaim',
	conf => "authentication_timeout = '60s'\nconnbudget.sample_interval = '100ms'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE worker LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout, idle_reclaim) VALUES
	  ('extraction', 'extraction', 3, 'queue', '30s', '200ms'),
	  ('keep',       'keep',       1, 'queue', '1s',  NULL);
});
reload_budgets($node);
my %extraction = (user => 'worker', application_name => 'extraction');

# Three sessions: one idle, one inside a transaction, one running a query.
my $idle = login($node, %extraction);
my $in_transaction = login($node, %extraction);
ok(query($in_transaction, 'BEGIN')->{ok} && query($in_transaction, 'SELECT 1')->{ok},
	'one session is idle inside a transaction');
my $busy = start_query(login($node, %extraction), 'SELECT pg_sleep(3)');
ok(poll_until($node, "SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)' AND state = 'active'"),
	'one is running a query');

# A fourth login waits: the idle session is ended for it, once idle for 200 ms.
my $waiter = start_login($node, %extraction);
my $admitted = finish_login($waiter);
ok($admitted->{ok}, 'a waiting login gets the slot of the idle session');
my $ended = ended_by_server($idle);
is($ended->{sqlstate}, '57P01', 'the idle session ends with SQLSTATE 57P01, which pools read as "connection gone"');
is($ended->{message}, 'terminating idle connection for a login waiting in connection budget "extraction"',
	'and is told which budget needed its slot');
like($ended->{detail},
	qr/^This session of connection budget "extraction" had been idle for \d+\.\d s, outside any transaction; the budget's idle_reclaim is 0\.2 s\.$/,
	'how long it had been idle');
ok(query($in_transaction, 'SELECT 2')->{ok} && query($in_transaction, 'COMMIT')->{ok},
	'the session inside a transaction was left alone');
my $finished = finish_query($busy);
ok($finished->{ok}, 'and so was the one running a query');
is($node->safe_psql('postgres', q{SELECT reclaimed || '/' || active || '/' || waiting FROM connbudget.status WHERE budget = 'extraction'}),
	'1/3/0', 'status counts one session reclaimed; the budget holds its 3 again, nobody waits');
ok($node->wait_for_log(qr/FATAL:  terminating idle connection for a login waiting in connection budget "extraction"/),
	'the server log has it');
ok(poll_until($node, q{SELECT sum(reclaimed) = 1 FROM connbudget.history WHERE budget = 'extraction'}),
	'and so does the history');

# Sessions that become idle later are taken once idle long enough: the busy one's query
# is over now, and the transaction has ended. The session admitted above is in a
# transaction now, so it is not.
ok(query($admitted, 'BEGIN')->{ok}, 'the session admitted above opens a transaction');
my @waiters = map { start_login($node, %extraction) } 1 .. 2;
my @got = map { finish_login($_) } @waiters;
is(scalar(grep { $_->{ok} } @got), 2, 'two more waiters get the slots of the two idle sessions');
is(ended_by_server($in_transaction)->{sqlstate}, '57P01', 'the one whose transaction had ended');
is(ended_by_server($busy)->{sqlstate}, '57P01', 'and the one whose query had ended');
ok(query($admitted, 'COMMIT')->{ok}, 'the session in a transaction is still there');

# A budget without idle_reclaim: its idle session is never ended; the waiter times out.
my $kept = login($node, user => 'worker', application_name => 'keep');
my $refused = login($node, user => 'worker', application_name => 'keep');
is($refused->{message}, 'timed out waiting for a slot in connection budget "keep"',
	'with idle_reclaim NULL a waiter times out');
ok(query($kept, 'SELECT 4')->{ok}, 'and the idle session was never touched');
is($node->safe_psql('postgres', q{SELECT reclaimed FROM connbudget.status WHERE budget = 'keep'}), '0',
	'nothing was reclaimed from it');
ConnBudgetTest::logout($_) for $kept, @got, $admitted;

# Waiting for shared capacity: 7 connections for ordinary logins, 2 of them a waiting
# room. A low-priority budget above its (empty) entitlement holds the shared sessions; a
# higher-priority login waiting for shared capacity takes the longest-idle of them, never
# the session of a budget of a higher priority than its own.
$node->append_conf('postgresql.conf', "max_connections = 10\nconnbudget.waiting_room = 2\n");
$node->restart;
$node->safe_psql('postgres', q{
	DELETE FROM connbudget.budgets;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout, priority, idle_reclaim) VALUES
	  ('low',  'low',  10, 'queue', '30s', 0, '0s'),
	  ('top',  'top',  10, 'queue', '30s', 9, '0s'),
	  ('high', 'high', 10, 'queue', '30s', 5, NULL);
});
reload_budgets($node);
my $monitor = login($node);    # a superuser: one of the 5 shared sessions
ok(poll_until($monitor, "SELECT active = 1 FROM connbudget.status WHERE budget = 'exempt'"),
	'the monitoring session is the only other backend');
my $top = login($node, user => 'worker', application_name => 'top');    # idle longest
my @low = map { login($node, user => 'worker', application_name => 'low') } 1 .. 3;
is(scalar(grep { $_->{ok} } $top, @low), 4, 'top and low hold the other 4 shared sessions');
my $high = start_login($node, user => 'worker', application_name => 'high');
my $high_session = finish_login($high);
ok($high_session->{ok}, 'a login of a higher priority, waiting for shared capacity, gets a session');
is(ended_by_server($low[0])->{message}, 'terminating idle connection for a login waiting in connection budget "high"',
	"the longest-idle low session was ended for it");
ok(query($top, 'SELECT 5')->{ok}, 'not the older session of top, whose priority is higher');
is(query($monitor, q{SELECT string_agg(budget || '=' || reclaimed, ' ' ORDER BY budget) FROM connbudget.status WHERE budget IN ('low', 'top', 'high')})->{rows}[0][0],
	'high=0 low=1 top=0', 'status counts it for low');

ConnBudgetTest::logout($_) for $top, @low[1, 2], $high_session, $monitor;
$node->stop;
done_testing();

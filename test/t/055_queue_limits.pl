# The queue's outer limits: authentication_timeout caps the wait (with a WARNING when the
# budgets load); the implicit default budget queues when the settings say so; a server
# shutdown ends waiting logins without hanging.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = start_node('queue_limits', conf => "authentication_timeout = '2s'\n");
$node->safe_psql('postgres', 'CREATE ROLE app LOGIN');

# queue_timeout beyond authentication_timeout: warned at load, capped at login.
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout)
	VALUES ('slow', 'slow', 1, 'queue', '30s');
});
reload_budgets($node);
ok($node->wait_for_log(
		qr/WARNING:  queue_timeout of connection budget "slow" \(30000 ms\) exceeds authentication_timeout \(2 s\)/,
		$log_offset),
	'loading a queue_timeout longer than authentication_timeout warns');
my $holder = login($node, user => 'app', application_name => 'slow');
my $started = time;
my $capped = login($node, user => 'app', application_name => 'slow');
my $waited = time - $started;
is($capped->{message}, 'timed out waiting for a slot in connection budget "slow"',
	'the waiter gets our timeout message, not a dropped connection');
like($capped->{hint}, qr/limited by authentication_timeout \(2 s\); queue_timeout asks for 30000 ms/,
	'and the hint says why it waited less');
ok($waited > 1.5, sprintf('it waited until shortly before the 2 s (%.2f s)', $waited));
logout($holder);

# The default budget queues when connbudget.default_on_full = queue.
$node->append_conf('postgresql.conf', "connbudget.default_max_connections = 1\nconnbudget.default_on_full = queue\n");
$node->reload;
ok($node->poll_query_until('postgres',
		"SELECT connbudget.reload() > 0 AND (SELECT on_full = 'queue' AND max_connections = 1 FROM connbudget.status WHERE budget = 'default')"),
	'the settings reach the default budget');
my $first = login($node, user => 'app', application_name => 'unbudgeted');
ok($first->{ok}, 'one login of default fits');
my $second = start_login($node, user => 'app', application_name => 'unbudgeted');
ok(wait_for_waiting($node, 'default', 1), 'the next one waits in default\'s queue');
logout($first);
ok(finish_login($second)->{ok}, 'and gets the slot when it frees');

# A waiting login does not hold up a fast shutdown.
my $waiter = start_login($node, user => 'app', application_name => 'unbudgeted');
ok(wait_for_waiting($node, 'default', 1), 'a login waits');
$started = time;
$node->stop('fast');
ok(time - $started < 10, 'the server shuts down without waiting for it');
ok(!finish_login($waiter)->{ok}, 'the waiting login is ended');

done_testing();

# connbudget.pause() stops new logins of a budget without touching its sessions: a
# rejecting budget refuses them with a message that says it is paused, a queueing budget
# holds them in its queue; resume() lets them in, waiters first. A reload keeps the pause.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('pause', conf => "authentication_timeout = '60s'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout)
	VALUES ('api', 'backend', 5, 'reject', NULL), ('workers', 'worker', 5, 'queue', '60s');
});
reload_budgets($node);
my %api = (user => 'app', application_name => 'backend');
my %worker = (user => 'app', application_name => 'worker');

# A rejecting budget.
my $session = login($node, %api);
ok($session->{ok}, 'an api session logs in');
$node->safe_psql('postgres', "SELECT connbudget.pause('api')");
my $refused = login($node, %api);
is($refused->{sqlstate}, '53300', 'a login of a paused rejecting budget is refused with 53300');
is($refused->{message}, 'connection budget "api" is paused', 'with a message that says the budget is paused');
is($refused->{detail}, 'An administrator paused new logins of this budget; its 1 sessions continue.',
	'and that its sessions continue');
is($refused->{hint}, "Retry later. connbudget.resume('api') lets logins in again.", 'and how to undo it');
my $socket = $session->{socket};
print $socket 'Q' . pack('N', 4 + length("SELECT 1\0")) . "SELECT 1\0";
ok(IO::Select->new($socket)->can_read(10), 'the existing session still answers queries');
is($node->safe_psql('postgres', "SELECT active, rejected_paused, paused FROM connbudget.status WHERE budget = 'api'"),
	'1|1|t', 'status shows the session, the refusal and the pause');
is($node->safe_psql('postgres', "SELECT active FROM connbudget.status WHERE budget = 'workers'"), '0',
	'other budgets are not affected');
ok(login($node, %worker)->{ok}, 'a login of another budget is admitted (and leaves)');

# A reload keeps the pause.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET max_connections = 6 WHERE name = 'api'");
reload_budgets($node);
is(login($node, %api)->{message}, 'connection budget "api" is paused', 'a reload keeps the budget paused');
$node->safe_psql('postgres', "SELECT connbudget.resume('api')");
ok(login($node, %api)->{ok}, 'after resume() the budget admits again');

# A queueing budget holds new logins until it is resumed, then admits them in order.
$node->safe_psql('postgres', "SELECT connbudget.pause('workers')");
my @waiters;
for my $n (1 .. 3)
{
	push @waiters, start_login($node, %worker);
	ok(wait_for_waiting($node, 'workers', $n), "login $n waits while the budget is paused");
}
ok(!answered($waiters[0], 0.3), 'nobody is admitted although the budget has room');
$node->safe_psql('postgres', "SELECT connbudget.resume('workers')");
ok((grep { finish_login($_)->{ok} } @waiters) == 3, 'resume() admits every waiter');
ok(wait_for_waiting($node, 'workers', 0), 'the queue is empty');

# A paused queueing budget's waiters time out with a message that names the pause.
$node->safe_psql('postgres', q{
	UPDATE connbudget.budgets SET queue_timeout = '200ms' WHERE name = 'workers';
	SELECT connbudget.pause('workers');
});
reload_budgets($node);
my $timed_out = login($node, %worker);
is($timed_out->{message}, 'timed out waiting for a slot in connection budget "workers"', 'a waiter times out');
like($timed_out->{detail}, qr/^waited \d+ ms; the budget is paused \(3 of 5 connections in use\)\.$/,
	'saying the budget is paused');
like($timed_out->{hint}, qr/connbudget\.resume\('workers'\)/, 'and how to resume it');

$node->stop;
done_testing();

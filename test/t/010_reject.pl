# A full budget refuses logins with SQLSTATE 53300 and a message naming the budget; freed
# slots are reusable; changes apply without a restart; superusers and walsenders are never
# limited.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $node = start_node('reject');
$node->safe_psql('postgres', q{
	CREATE ROLE worker LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections)
	VALUES ('extraction', 'extraction_worker', 3);
});
reload_budgets($node);

my %worker = (user => 'worker', application_name => 'extraction_worker');
my @held = map { login($node, %worker) } 1 .. 3;
ok((grep { $_->{ok} } @held) == 3, 'three logins fit a budget of 3');

my $refused = login($node, %worker);
ok(!$refused->{ok}, 'the fourth login is refused');
is($refused->{sqlstate}, '53300', 'refusal has SQLSTATE 53300 (too_many_connections)');
is($refused->{severity}, 'FATAL', 'refusal is FATAL');
is($refused->{message}, 'connection budget "extraction" is full', 'message names the budget');
is($refused->{detail},
	'3 of 3 connections in use (application_name "extraction_worker", role "worker", database "postgres").',
	'detail gives the counts and the login');
like($refused->{hint}, qr/raise its max_connections in connbudget\.budgets/, 'hint says what to do');

$node->connect_fails(
	'user=worker dbname=postgres application_name=extraction_worker',
	'libpq clients see the message text',
	expected_stderr => qr/FATAL:  connection budget "extraction" is full/);

my $status = status_of($node);
is($status->{extraction}{active}, 3, 'status shows 3 active');
is($status->{extraction}{admitted}, 3, 'status counts 3 admitted');
is($status->{extraction}{rejected}, 2, 'status counts 2 rejected');

logout(shift @held);
ok(wait_for_active($node, 'extraction', 2), 'a logout gives the slot back');
my $again = login($node, %worker);
ok($again->{ok}, 'the freed slot is reusable');
push @held, $again;

# Other applications and superusers are not limited by this budget.
ok(login($node, user => 'worker', application_name => 'psql')->{ok},
	'another application falls into default');
my $superuser = login($node, application_name => 'extraction_worker');
ok($superuser->{ok}, 'a superuser logs in although the budget is full');
is($node->safe_psql('postgres',
		"SELECT budget FROM connbudget.sessions WHERE application_name = 'extraction_worker' AND role_name <> 'worker'"),
	'exempt', 'the superuser is counted under exempt');
logout($superuser);

# A committed UPDATE reaches new logins without reload() or restart.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET max_connections = 4 WHERE name = 'extraction'");
ok($node->poll_query_until('postgres',
		"SELECT max_connections = 4 FROM connbudget.status WHERE budget = 'extraction'"),
	'the new limit is live after COMMIT');
my $fourth = login($node, %worker);
ok($fourth->{ok}, 'a raised limit admits one more login');
push @held, $fourth;
ok(!login($node, %worker)->{ok}, 'and not two more');

# Lowering the limit never ends existing sessions.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET max_connections = 1 WHERE name = 'extraction'");
reload_budgets($node);
is(status_of($node)->{extraction}{active}, 4, 'lowering the limit keeps the 4 sessions');
ok(!login($node, %worker)->{ok}, 'but refuses new ones');

# Monitor mode admits and logs what enforcement would have done.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET mode = 'monitor' WHERE name = 'extraction'");
reload_budgets($node);
# The refusals above may have taken this budget's one log line of the second: log in
# again until the line comes (each login is admitted; the log limiter lets one through
# once its second is over).
my $log_offset = -s $node->logfile;
my ($all_admitted, $monitor_logged) = (1, 0);
for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
{
	my $monitored = login($node, %worker);
	$all_admitted &&= $monitored->{ok};
	logout_and_wait($monitored);
	$monitor_logged = slurp_file($node->logfile, $log_offset) =~
	  /connection budget "extraction" would have refused this login \(monitor mode\)/;
	last if $monitor_logged || !$all_admitted;
	usleep(100_000);
}
ok($all_admitted, 'monitor mode admits beyond the limit');
ok($monitor_logged, 'monitor mode logs the refusal it did not make');

# connbudget.enabled = off admits everything and keeps counting.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET mode = 'enforce' WHERE name = 'extraction'");
reload_budgets($node);
$node->append_conf('postgresql.conf', "connbudget.enabled = off\n");
$node->reload;
my $unenforced;
for (1 .. 100)    # until the postmaster has read the new setting
{
	$unenforced = login($node, %worker);
	last if $unenforced->{ok};
	usleep(100_000);
}
ok($unenforced->{ok}, 'with connbudget.enabled off a full budget admits');
is(status_of($node)->{extraction}{active}, 5, 'and still counts the session');
logout($unenforced);
$node->append_conf('postgresql.conf', "connbudget.enabled = on\n");
$node->reload;

# Walsenders are never counted, even when their application_name matches a closed budget.
$node->safe_psql('postgres', q{
	INSERT INTO connbudget.budgets (name, application_name, max_connections)
	VALUES ('closed', 'standby_app', 0);
});
reload_budgets($node);
my $walsender = login($node, application_name => 'standby_app', replication => 'true');
ok($walsender->{ok}, 'a replication connection is not limited');
ok(!login($node, user => 'worker', application_name => 'standby_app')->{ok},
	'while an ordinary login to the closed budget is refused');
is(status_of($node)->{closed}{active}, 0, 'the walsender is not counted');
logout($walsender);

logout($_) for @held;
ok(wait_for_active($node, 'extraction', 0), 'all slots come back when the sessions end');

$node->stop;
done_testing();

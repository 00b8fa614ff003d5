# Every exit path gives the slot back: a FATAL later in startup (a session preload library
# that cannot be loaded; a missing database or the role's own CONNECTION LIMIT never take
# one), failed password authentication, pg_terminate_backend, a crash restart after
# SIGKILL; and 1,000 sequential logins leave the true count.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('no_leak', conf => "restart_after_crash = on\n");
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	CREATE ROLE limited LOGIN CONNECTION LIMIT 0;
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE scram_user LOGIN PASSWORD 'right';
	SET password_encryption = 'md5';
	CREATE ROLE md5_user LOGIN PASSWORD 'right';
	INSERT INTO connbudget.budgets (name, application_name, max_connections)
	VALUES ('leaky', 'leaky', 2), ('many', 'many', 40);
});
reload_budgets($node);

# Password authentication for two roles, before the trust line initdb wrote.
my $hba = $node->data_dir . '/pg_hba.conf';
my $trust = PostgreSQL::Test::Utils::slurp_file($hba);
PostgreSQL::Test::Utils::append_to_file("$hba.new",
	"local all scram_user scram-sha-256\nlocal all md5_user md5\n" . $trust);
rename("$hba.new", $hba) or die;
$node->reload;

my %leaky = (user => 'app', application_name => 'leaky');

my $no_db = login($node, %leaky, dbname => 'no_such_database');
is($no_db->{sqlstate}, '3D000', 'a login to a missing database fails after authentication');
my $limited = login($node, user => 'limited', application_name => 'leaky');
is($limited->{sqlstate}, '53300', "the role's own CONNECTION LIMIT refuses it");
like($limited->{message}, qr/too many connections for role "limited"/, 'with core\'s message');
ok(wait_for_active($node, 'leaky', 0), 'neither keeps a slot');
is(status_of($node)->{leaky}{admitted}, 0, 'neither was counted: PostgreSQL refuses both, before any budget');

# A FATAL after the slot was booked: a library in session_preload_libraries that cannot be
# loaded ends the login after authentication.
$node->safe_psql('postgres', q{CREATE ROLE preload LOGIN; ALTER ROLE preload SET session_preload_libraries = 'no_such_library'});
my $preload = login($node, user => 'preload', application_name => 'leaky');
like($preload->{message}, qr/could not access file "no_such_library"/, 'a login fails after it was admitted');
ok(wait_for_active($node, 'leaky', 0), 'and gives its slot back');
is(status_of($node)->{leaky}{admitted}, 1, 'it had been admitted');
$node->safe_psql('postgres', q{DROP ROLE preload});

for my $user ('scram_user', 'md5_user')
{
	$node->connect_fails("user=$user dbname=postgres application_name=leaky password=wrong",
		"$user with a wrong password fails",
		expected_stderr => qr/password authentication failed/);
	$node->connect_ok("user=$user dbname=postgres application_name=leaky password=right",
		"$user with the right password logs in and out");
}
ok(wait_for_active($node, 'leaky', 0), 'failed and finished password logins hold nothing');
is(status_of($node)->{leaky}{admitted}, 3, 'failed authentication never reaches the budget');

# pg_terminate_backend.
my $victim = login($node, %leaky);
ok($victim->{ok}, 'a session to terminate');
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM connbudget.sessions WHERE budget = 'leaky'");
ok(wait_for_active($node, 'leaky', 0), 'a terminated session gives its slot back');

# Both slots are usable afterwards, which proves nothing leaked above.
my @pair = map { login($node, %leaky) } 1 .. 2;
ok(($pair[0]{ok} && $pair[1]{ok}), 'the full budget of 2 is available');
ok(!login($node, %leaky)->{ok}, 'and is exact: a third is refused');

# SIGKILL of a backend: PostgreSQL restarts and rebuilds shared memory; counts restart
# from the sessions that exist (none), and the worker loads the budgets again.
my $pid = $node->safe_psql('postgres',
	"SELECT pid FROM connbudget.sessions WHERE budget = 'leaky' LIMIT 1");
kill 'KILL', $pid;
ok(wait_for_server($node), 'the server takes logins again after the crash');
ok($node->poll_query_until('postgres', 'SELECT budgets = 2 FROM connbudget.worker'),
	'after the crash restart the worker loads the budgets again');
my $after = status_of($node);
is($after->{leaky}{active}, 0, 'no session survived the crash, and none is counted');
@pair = map { login($node, %leaky) } 1 .. 2;
ok(($pair[0]{ok} && $pair[1]{ok}), 'after the crash the budget admits 2');
ok(!login($node, %leaky)->{ok}, 'and refuses the third');
logout($_) for @pair;

# 1,000 sequential logins, with three sessions held throughout.
my @kept = map { login($node, user => 'app', application_name => 'many') } 1 .. 3;
my ($admitted, $refused) = (0, 0);
for (1 .. 1000)
{
	my $session = login($node, user => 'app', application_name => 'many');
	if ($session->{ok}) { $admitted++; logout($session); }
	else { $refused++; }
}
is($admitted + $refused, 1000, '1,000 sequential logins ran');
is($refused, 0, 'none was refused');
ok(wait_for_active($node, 'many', 3), 'active is back to the 3 held sessions');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'many'"),
	'3', 'which is the true count');
is(status_of($node)->{many}{admitted}, 1003, 'every admission was counted');
logout($_) for @kept;
ok(wait_for_active($node, 'many', 0), 'and 0 after the last logout');

$node->stop;
done_testing();

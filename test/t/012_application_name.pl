# A login's application_name is what the server made of the startup packet's: PostgreSQL 15
# writes each byte outside printable ASCII as '?', 16 and later as \xNN; and only its first
# 63 bytes count. Real logins with
# such names land in the budget connbudget.match() names for the same name, on every
# version, and the views show the name as the server does.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('application_name');
$node->safe_psql('postgres', q{
	CREATE ROLE worker LOGIN;
	INSERT INTO connbudget.budgets (name, position, application_name, max_connections) VALUES
	  ('cleaned_15', 1, 'caf??%', 5),
	  ('cleaned_16', 2, 'caf\\\\xc3\\\\xa9%', 5);  -- q{} halves backslashes
});
reload_budgets($node);
my $version = $node->safe_psql('postgres', 'SHOW server_version_num');
my ($expected_budget, $expected_name) =
  $version >= 160000 ? ('cleaned_16', 'caf\xc3\xa9-7') : ('cleaned_15', 'caf??-7');

my $name = "caf\xc3\xa9-7";    # "café-7" in UTF-8, as a client sends it
my $session = login($node, user => 'worker', application_name => $name);
ok($session->{ok}, 'a login with a non-ASCII application_name gets in');
my $matched = $node->safe_psql('postgres', "SELECT connbudget.match(convert_from('\\x" . unpack('H*', $name)
	  . "', 'UTF8'), 'worker', 'postgres')");
is($matched, $expected_budget, "match() names the budget of the server's cleaning ($expected_budget)");
is($node->safe_psql('postgres', "SELECT budget || ' ' || application_name FROM connbudget.sessions WHERE pid = $session->{pid}"),
	"$matched $expected_name", 'the real login is counted there, under the name as the server wrote it');
is($node->safe_psql('postgres', "SELECT application_name FROM pg_stat_activity WHERE pid = $session->{pid}"),
	$expected_name, 'which is the name pg_stat_activity shows');
ConnBudgetTest::logout($session);

my ($rc, $stdout, $stderr) = $node->psql('postgres',
	q{INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('accents', 'café%', 5)});
isnt($rc, 0, 'a pattern no login can carry is refused');
like($stderr, $version >= 160000 ? qr/as \\xNN; write "caf\\\\xc3\\\\xa9%"/ : qr/as "\?"; write "caf\?\?%"/,
	'with the pattern that matches such names on this version');

# Only the first 63 bytes of an application_name count, as pg_stat_activity shows it: a
# 10 kB name is matched in its first 63 bytes, so it cannot stall the login path.
$node->safe_psql('postgres', q{
	INSERT INTO connbudget.budgets (name, position, application_name, max_connections) VALUES ('tail', 3, '%tail', 5);
});
reload_budgets($node);
my $long = ('a' x 9800) . 'tail';    # near the 10,000 bytes a startup packet may have
my $long_session = login($node, user => 'worker', application_name => $long);
ok($long_session->{ok}, 'a login with a 9.8 kB application_name gets in');
is($node->safe_psql('postgres', "SELECT budget || ' ' || length(application_name) FROM connbudget.sessions WHERE pid = $long_session->{pid}"),
	'default 63', 'its name counts in its first 63 bytes: "...tail" at the end does not match "%tail"');
is($node->safe_psql('postgres', "SELECT connbudget.match(repeat('a', 9800) || 'tail', 'worker', 'postgres')"),
	'default', 'match() counts the same');
ConnBudgetTest::logout($long_session);
($rc, $stdout, $stderr) = $node->psql('postgres',
	q{INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('long', '%' || repeat('a', 250) || 'b', 5)});
like($stderr, qr/can never match: it matches only names longer than the 63 bytes of a login's application_name that count/,
	'a pattern only longer names could match is refused');

# A role whose name another database's encoding made (here SQL_ASCII: the byte 0xE9) is
# shown in connbudget.sessions in valid UTF-8, so that clients can read the view.
$node->safe_psql('postgres', q{CREATE DATABASE ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$node->safe_psql('ascii', "CREATE ROLE \"caf\xe9\" LOGIN");
my $latin = login($node, user => "caf\xe9");
ok($latin->{ok}, 'a role named in another encoding logs in');
is($node->safe_psql('postgres', "SELECT role_name FROM connbudget.sessions WHERE pid = $latin->{pid}"), 'caf?',
	'connbudget.sessions shows its name in valid UTF-8, the stray byte as "?"');
ConnBudgetTest::logout($latin);

$node->stop;
done_testing();

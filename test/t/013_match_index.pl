# Thousands of budgets, classified through the match index: real logins land in the first
# budget in position order that matches them, whichever kind of key files it (application_name
# pattern or exact name, role, "+group", database, a pattern no key indexes), and the same one
# connbudget.match() names. Changing the budgets makes a new index live with them, and a few
# budgets (an index that keeps its lists in its header) do the same.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('match_index', conf => "connbudget.max_budgets = 6000\n");
$node->safe_psql('postgres', q{
	CREATE ROLE tenant_7 LOGIN;
	CREATE ROLE team NOLOGIN;
	CREATE ROLE member LOGIN IN ROLE team;
	CREATE DATABASE reports;
	INSERT INTO connbudget.budgets (name, position, application_name, role_name, database_name, max_connections)
	SELECT 'pattern_' || i, i, 'app_' || i || '-%', NULL, NULL, 5 FROM generate_series(1, 3000) i
	UNION ALL SELECT 'exact_' || i, 3000 + i, 'svc' || i, NULL, NULL, 5 FROM generate_series(1, 1000) i
	UNION ALL SELECT 'role_' || i, 4000 + i, NULL, 'tenant_' || i, NULL, 5 FROM generate_series(1, 500) i
	UNION ALL SELECT 'group', 4600, NULL, '+team', NULL, 5
	UNION ALL SELECT 'reports', 4700, NULL, NULL, 'reports', 5
	UNION ALL SELECT 'anywhere', 4800, '%-anywhere', NULL, NULL, 5;
});
reload_budgets($node);
is($node->safe_psql('postgres', 'SELECT budgets || ' . q{' '} . ' || unindexed_budgets FROM connbudget.worker'),
	'4503 1', 'all 4,503 budgets are live, and only the one starting with % is not indexed');

my $superuser = $node->safe_psql('postgres', 'SELECT current_user');
my @cases = (
	[ 'app_2999-worker', 'tenant_7', 'postgres', 'pattern_2999', 'a pattern, last of its shape' ],
	[ 'app_3-x', 'tenant_7', 'postgres', 'pattern_3', 'a pattern of another shape' ],
	[ 'svc1000', 'tenant_7', 'postgres', 'exact_1000', 'an exact name' ],
	[ 'svc1000x', 'tenant_7', 'postgres', 'role_7', 'a longer name is not the exact one: the role budget' ],
	[ 'psql', 'member', 'postgres', 'group', 'a member of +team' ],
	[ 'psql', 'member', 'reports', 'group', 'the group comes before the database in position order' ],
	[ 'psql', $superuser, 'reports', 'exempt', 'a superuser is exempt' ],
	[ 'app_9-anywhere', 'tenant_7', 'postgres', 'pattern_9', 'a pattern before the unindexed one' ],
	[ 'x-anywhere', 'member', 'reports', 'group', 'the group before the unindexed one' ],
	[ 'x-anywhere', 'plain', 'postgres', 'anywhere', 'the unindexed pattern' ],
	[ 'nothing', 'plain', 'postgres', 'default', 'no budget at all' ],
);
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
for my $case (@cases)
{
	my ($app, $role, $db, $budget, $what) = @$case;
	my $session = login($node, user => $role, dbname => $db, application_name => $app);
	my $counted = $session->{ok}
	  ? $node->safe_psql('postgres', "SELECT budget FROM connbudget.sessions WHERE pid = $session->{pid}")
	  : "refused: $session->{message}";
	is($counted, $budget, "$what: $app as $role into $db is counted in $budget");
	is($node->safe_psql('postgres', "SELECT connbudget.match('$app', '$role', '$db')"), $budget,
		"and match() names $budget");
	ConnBudgetTest::logout_and_wait($session);
}

# A change makes a new index live: the deleted pattern's logins fall through to the next
# budget that matches, a new first budget takes the exact name.
$node->safe_psql('postgres', q{
	DELETE FROM connbudget.budgets WHERE name = 'pattern_2999';
	INSERT INTO connbudget.budgets (name, position, application_name, max_connections) VALUES ('first', 0, 'svc_000', 5);
});
reload_budgets($node);
my $fallen = login($node, user => 'tenant_7', application_name => 'app_2999-worker');
is($node->safe_psql('postgres', "SELECT budget FROM connbudget.sessions WHERE pid = $fallen->{pid}"), 'role_7',
	'after the delete, its login falls to the next budget that matches');
is($node->safe_psql('postgres', q{SELECT connbudget.match('svc1000', 'x', 'postgres')}), 'first',
	"the new first budget's '_' wildcards take svc1000");
ConnBudgetTest::logout($fallen);

# A few budgets: the index keeps its lists in its header (compact); the same kinds of key
# still find each login its first match.
$node->safe_psql('postgres', q{
	DELETE FROM connbudget.budgets;
	INSERT INTO connbudget.budgets (name, position, application_name, role_name, database_name, max_connections) VALUES
	  ('few_pattern', 1, 'app_1-%', NULL, NULL, 5), ('few_exact', 2, 'svc1', NULL, NULL, 5),
	  ('few_role', 3, NULL, 'tenant_7', NULL, 5), ('few_group', 4, NULL, '+team', NULL, 5),
	  ('few_reports', 5, NULL, NULL, 'reports', 5);
});
reload_budgets($node);
for my $case ([ 'app_1-x', 'tenant_7', 'postgres', 'few_pattern' ], [ 'svc1', 'tenant_7', 'postgres', 'few_exact' ],
	[ 'psql', 'tenant_7', 'reports', 'few_role' ], [ 'psql', 'member', 'reports', 'few_group' ],
	[ 'psql', 'plain', 'reports', 'few_reports' ], [ 'app_2-x', 'plain', 'postgres', 'default' ])
{
	my ($app, $role, $db, $budget) = @$case;
	my $session = login($node, user => $role, dbname => $db, application_name => $app);
	is($node->safe_psql('postgres', "SELECT budget FROM connbudget.sessions WHERE pid = $session->{pid}"), $budget,
		"among five budgets, $app as $role into $db is counted in $budget");
	ConnBudgetTest::logout_and_wait($session);
}

$node->stop;
done_testing();

# Who may do what, object by object: a superuser everything; a budget administrator with
# the grants the README documents everything; a pg_monitor member reads the views and the
# table and calls match() and explain(), and changes nothing; an ordinary role nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('privileges');
my $superuser = $ENV{USER} // scalar getpwuid($<);
$node->safe_psql('postgres', q{
	CREATE ROLE budget_admin LOGIN IN ROLE pg_monitor, pg_signal_backend;
	GRANT USAGE ON SCHEMA connbudget TO budget_admin;
	GRANT SELECT, INSERT, UPDATE, DELETE ON connbudget.budgets TO budget_admin;
	GRANT EXECUTE ON FUNCTION connbudget.reload(), connbudget.reset_stats(text), connbudget.pause(text),
	                          connbudget.resume(text), connbudget.terminate_excess(text, boolean) TO budget_admin;
	CREATE ROLE watcher LOGIN IN ROLE pg_monitor;
	CREATE ROLE plain LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('target', 'target', 5);
});
reload_budgets($node);

# Each operation, and which of the four roles may do it (superuser, admin, watcher, plain).
my @reads = map { "SELECT count(*) FROM connbudget.$_" } qw(status sessions worker latency history wait_histogram budgets);
my @cases = (
	(map { [ $_, 1, 1, 1, 0 ] } @reads),
	[ q{SELECT connbudget.match('a', 'b', 'c')}, 1, 1, 1, 0 ],
	[ q{SELECT count(*) FROM connbudget.explain('a', 'b', 'c')}, 1, 1, 1, 0 ],
	[ q{INSERT INTO connbudget.budgets (name, max_connections) VALUES ('new_' || md5(random()::text), 1)}, 1, 1, 0, 0 ],
	[ q{UPDATE connbudget.budgets SET max_connections = 6 WHERE name = 'target'}, 1, 1, 0, 0 ],
	[ q{DELETE FROM connbudget.budgets WHERE name LIKE 'new\_%'}, 1, 1, 0, 0 ],
	[ q{SELECT connbudget.reload()}, 1, 1, 0, 0 ],
	[ q{SELECT connbudget.reset_stats('target')}, 1, 1, 0, 0 ],
	[ q{SELECT connbudget.pause('target')}, 1, 1, 0, 0 ],
	[ q{SELECT connbudget.resume('target')}, 1, 1, 0, 0 ],
	[ q{SELECT count(*) FROM connbudget.terminate_excess('target')}, 1, 1, 0, 0 ],
	[ q{SELECT connbudget.reset_stats()}, 1, 1, 0, 0 ],
);
my @roles = ($superuser, 'budget_admin', 'watcher', 'plain');
for my $case (@cases)
{
	my ($sql, @allowed) = @$case;
	for my $i (0 .. $#roles)
	{
		my ($rc, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-U', $roles[$i] ]);
		if ($allowed[$i])
		{
			is($rc, 0, "$roles[$i] may: $sql") or diag $err;
		}
		else
		{
			ok($rc != 0 && $err =~ /permission denied/, "$roles[$i] may not: $sql") or diag "rc $rc: $err";
		}
	}
}

# The trigger functions and the SQL-callable internals are not for PUBLIC.
is($node->safe_psql('postgres', q{
	SELECT string_agg(p.proname, ', ' ORDER BY p.proname) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	 WHERE n.nspname = 'connbudget' AND has_function_privilege('plain', p.oid, 'EXECUTE')}), '',
	'an ordinary role may call no function of the extension');

$node->stop;
done_testing();

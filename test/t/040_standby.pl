# On a hot standby, budgets arrive through replication: the standby's worker loads them
# (read-only) and picks up changes made on the primary; logins there are enforced.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = start_node('primary');
$primary->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections)
	VALUES ('reports', 'reports', 1);
});
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

ok($standby->poll_query_until('postgres',
		q{SELECT max_connections = 1 FROM connbudget.status WHERE budget = 'reports'}),
	'the standby enforces the budgets of the primary');
my %reports = (user => 'app', application_name => 'reports');
my $held = login($standby, %reports);
ok($held->{ok}, 'one login fits');
my $refused = login($standby, %reports);
is($refused->{sqlstate}, '53300', 'the second is refused on the standby');

$primary->safe_psql('postgres', "UPDATE connbudget.budgets SET max_connections = 2 WHERE name = 'reports'");
ok($standby->poll_query_until('postgres',
		q{SELECT max_connections = 2 FROM connbudget.status WHERE budget = 'reports'}),
	'a change on the primary reaches the standby');
ok(login($standby, %reports)->{ok}, 'and takes effect there');
is($standby->safe_psql('postgres', 'SELECT connbudget.reload() > 0'), 't',
	'reload() works on the standby');
is($standby->safe_psql('postgres', 'SELECT last_error IS NULL FROM connbudget.worker'), 't',
	'the standby worker loads without errors');
logout($held);

$standby->stop;
$primary->stop;
done_testing();

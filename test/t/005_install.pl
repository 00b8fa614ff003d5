# CREATE EXTENSION pg_connbudget creates its objects in a schema of its own: it refuses a
# connbudget schema that an ordinary role created first, or one that holds objects, and
# says what to do. On a server that does not preload the library it installs too.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('install');    # the extension is created in "postgres"
$node->safe_psql('postgres', 'CREATE DATABASE other; CREATE DATABASE third; CREATE ROLE mallory LOGIN');
$node->safe_psql('other', 'CREATE SCHEMA connbudget AUTHORIZATION mallory');
my ($rc, $out, $err) = $node->psql('other', 'CREATE EXTENSION pg_connbudget');
isnt($rc, 0, "a connbudget schema of an ordinary role's is not adopted");
like($err, qr/schema connbudget belongs to role "mallory", which is not a superuser/, 'saying whose it is');
like($err, qr/HINT:  Drop that schema, or make a superuser its owner/, 'and what to do');

$node->safe_psql('third', 'CREATE SCHEMA connbudget; CREATE TABLE connbudget.budgets (name text)');
($rc, $out, $err) = $node->psql('third', 'CREATE EXTENSION pg_connbudget');
isnt($rc, 0, 'nor one that holds objects already');
like($err, qr/schema connbudget already holds objects/, 'saying so');
$node->safe_psql('third', 'DROP SCHEMA connbudget CASCADE; CREATE EXTENSION pg_connbudget');
is($node->safe_psql('third', "SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'connbudget'"),
	$ENV{USER} // scalar getpwuid($<), 'without it, the extension makes its own, owned by the superuser');

$node->stop;

# On a server that does not preload the library, CREATE EXTENSION works and the session goes
# on; what needs the shared memory says to preload it.
my $plain = PostgreSQL::Test::Cluster->new('not_preloaded');
$plain->init;
$plain->append_conf('postgresql.conf', "connbudget.max_budgets = 5000\n");
$plain->start;
($rc, $out, $err) = $plain->psql('postgres', 'CREATE EXTENSION pg_connbudget; SELECT 1');
is($rc, 0, 'CREATE EXTENSION on a server that does not preload the library');
is($out, '1', 'and the session goes on');
is($err, '', 'keeping postgresql.conf\'s connbudget.max_budgets without a warning');
is($plain->safe_psql('postgres',
		"INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('api', 'api', 5);"
		  . ' SELECT count(*) FROM connbudget.budgets'),
	'1', 'budgets can be written before the restart that enforces them');
# The table's limit is the one postgresql.conf sets for that restart, not the built-in 1,000.
is($plain->safe_psql('postgres',
		"INSERT INTO connbudget.budgets (name, application_name, max_connections)"
		  . " SELECT 'tenant_' || i, 'tenant_' || i, 1 FROM generate_series(2, 1500) i;"
		  . ' SELECT count(*) FROM connbudget.budgets'),
	'1500', 'as many budgets as the configured connbudget.max_budgets allows');
($rc, $out, $err) = $plain->psql('postgres',
	"INSERT INTO connbudget.budgets (name, application_name, max_connections)"
	  . " SELECT 'more_' || i, 'more_' || i, 1 FROM generate_series(1, 3501) i");
like($err, qr/would hold 5001 budgets, more than connbudget.max_budgets \(5000\)/,
	'and no more');
($rc, $out, $err) = $plain->psql('postgres', 'SELECT * FROM connbudget.status');
isnt($rc, 0, 'the views need the library preloaded');
like($err, qr/pg_connbudget is not loaded/, 'saying so');
like($err, qr/HINT:  Add pg_connbudget to shared_preload_libraries and restart the server/, 'and what to do');
$plain->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connbudget'\n");
$plain->restart;
$plain->poll_query_until('postgres', "SELECT budget = 'api' FROM connbudget.status WHERE budget = 'api'")
  or die 'the budget written before the restart never became live';
is($plain->safe_psql('postgres', 'SHOW connbudget.max_budgets'), '5000',
	'after the restart, the postgresql.conf value of a server-start setting holds');
$plain->stop;
done_testing();

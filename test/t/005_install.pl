# CREATE EXTENSION pg_connbudget creates its objects in a schema of its own: it refuses a
# connbudget schema that an ordinary role created first, or one that holds objects, and
# says what to do.
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
done_testing();

# The check that all reservations fit the server cannot be dodged by concurrent writers:
# a REPEATABLE READ transaction still sees budgets committed after its snapshot was taken.
# On PostgreSQL 16+ the capacity leaves out reserved_connections too.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('reservation_check');    # max_connections 40, 3 for superusers: 37
my $early = $node->background_psql('postgres', on_error_stop => 0);
$early->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$early->query_safe('SELECT count(*) FROM connbudget.budgets');    # takes the snapshot

$node->safe_psql('postgres', q{
	INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved)
	VALUES ('first', 'first', 30, 30);
});
my (undef, $failed) = $early->query(q{
	INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved)
	VALUES ('second', 'second', 30, 30)});
ok($failed, 'the second reservation is refused');
like($early->{stderr}, qr/budgets would reserve 60 connections, more than the server's 37/,
	'with the numbers, although its snapshot predates the first');
$early->quit;
is($node->safe_psql('postgres', 'SELECT sum(reserved) FROM connbudget.budgets'), '30',
	'only the first reservation is stored');

# PostgreSQL 16 and later also keep reserved_connections from ordinary logins.
SKIP:
{
	skip 'reserved_connections exists from PostgreSQL 16', 2
	  if $node->safe_psql('postgres', 'SHOW server_version_num') < 160000;
	$node->append_conf('postgresql.conf', "reserved_connections = 2\n");
	$node->restart;
	is($node->safe_psql('postgres', 'SELECT capacity FROM connbudget.worker'), '35',
		'the capacity is 40 - 3 - 2');
	my ($rc, $stdout, $stderr) = $node->psql('postgres', q{
		INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved)
		VALUES ('third', 'third', 30, 6)});
	like($stderr,
		qr/more than the server's 35\nDETAIL:  The server's capacity is max_connections \(40\) minus superuser_reserved_connections \(3\) minus reserved_connections \(2\)\./,
		'a reservation beyond it is refused, with how the capacity is made up');
}

$node->stop;
done_testing();

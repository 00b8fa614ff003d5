# Under a storm of refusals the server log gets at most one line per budget per second,
# with who was refused and the counts; the lines held back are summarised ("N more"), so
# that every refusal is accounted for. Every client still gets its own message.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(sleep time);

my $node = start_node('refusal_log');
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections)
	VALUES ('closed', 'closed_app', 0), ('other', 'other_app', 0);
});
reload_budgets($node);
my $log_offset = -s $node->logfile;

my $storm = 40;
my $started = time;
my @refused = map { login($node, user => 'app', application_name => 'closed_app') } 1 .. $storm;
my $storm_seconds = time - $started;
is((grep { ($_->{sqlstate} // '') eq '53300' } @refused), $storm, "all $storm clients get SQLSTATE 53300");
is((grep { $_->{message} eq 'connection budget "closed" is full' } @refused), $storm,
	'and the message naming the budget');
ok(login($node, user => 'app', application_name => 'other_app')->{sqlstate} eq '53300',
	'a refusal of another budget during the storm');

# Every refusal is accounted for once the worker has summarised the last lines held back
# (a long storm has summaries along the way too).
sub accounted
{
	my $log = substr(slurp_file($node->logfile), $log_offset);
	my @lines = $log =~ /FATAL:  connection budget "closed" is full\n/g;
	my $held_back = 0;
	$held_back += $_ for $log =~ /(\d+) similar messages about this budget were not logged since the last one/g;
	$held_back += $_ for $log =~ /connection budget "closed": (\d+) more messages about its logins were not logged/g;
	return ($log, scalar @lines, $held_back);
}
my ($log, $logged, $held_back);
for (1 .. 10 * $PostgreSQL::Test::Utils::timeout_default)
{
	($log, $logged, $held_back) = accounted();
	last if $logged + $held_back >= $storm;
	sleep 0.1;
}
like($log, qr/connection budget "closed": \d+ more messages about its logins were not logged/,
	'the worker summarises the lines held back');

my $allowed = 1 + int($storm_seconds);
ok($logged >= 1 && $logged <= $allowed,
	sprintf('%d refusals in %.2f s are logged as %d lines (at most one per second)', $storm, $storm_seconds,
		$logged));
like($log, qr/FATAL:  connection budget "closed" is full\n.*DETAIL:  0 of 0 connections in use; application_name "closed_app", role "app", database "postgres", client \[local\]\./,
	'a logged refusal names the application, role, database and client');
like($log, qr/FATAL:  connection budget "other" is full/, 'another budget has its own allowance');

is($logged + $held_back, $storm, 'logged lines plus the counts held back account for every refusal');
is($node->safe_psql('postgres', "SELECT rejected_full FROM connbudget.status WHERE budget = 'closed'"), $storm,
	'status counts every refusal');

# A quiet second later, the next refusal is logged again (waiting until the server's clock
# is past the last refusal by more than the limiter's second).
ok($node->poll_query_until('postgres',
		"SELECT clock_timestamp() > last_refusal_at + interval '1.1 s' FROM connbudget.status WHERE budget = 'closed'"),
	'a second passes without a refusal');
$log_offset = -s $node->logfile;
login($node, user => 'app', application_name => 'closed_app');
ok($node->wait_for_log(qr/FATAL:  connection budget "closed" is full/, $log_offset),
	'after a quiet second the next refusal is logged');

$node->stop;
done_testing();

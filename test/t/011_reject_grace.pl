# A full budget that refuses gives a session on its way out a moment to leave
# (connbudget.reject_grace): a pool that closes a connection and logs in again at once finds
# its old session still counted until that backend has exited. Within the grace the new
# login waits for that slot; after it, it is refused as the budget is full. Either way it is
# counted as what it came to (admitted, rejected), never as queued or timed out; with no
# grace it is refused at once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('grace',
	conf => "authentication_timeout = '120s'\nconnbudget.reject_grace = '60s'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE api LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, role_name, max_connections, reserved)
	VALUES ('api', 'backend', 'api', 2, 2);
});
reload_budgets($node);

my %api = (user => 'api', application_name => 'backend');
my @held = map { login($node, %api) } 1 .. 2;
ok((grep { $_->{ok} } @held) == 2, 'the budget holds its 2 sessions');

# A session ends as a new login arrives: the login waits for its slot.
my $next = start_login($node, %api);
ok(wait_for_waiting($node, 'api', 1), 'a login of the full budget waits in its grace');
my ($verdict, $reason) = split /\|/,
  $node->safe_psql('postgres', "SELECT verdict, reason FROM connbudget.explain('backend', 'api', 'postgres')");
is($verdict, 'refuse: budget full', 'explain() gives the verdict the grace ends in');
like($reason, qr/once connbudget\.reject_grace \(60000 ms\) has passed without a session of it ending/,
	'and says the login waits for the grace first');
logout(shift @held);
my $admitted = finish_login($next);
ok($admitted->{ok}, 'the slot of the session that ended goes to the waiting login');
push @held, $admitted;
my $status = status_of($node);
is_deeply([ @{ $status->{api} }{qw(active waiting admitted rejected timed_out)} ], [ 2, 0, 3, 0, 0 ],
	'status: 2 active, none waiting, 3 admitted, nothing refused or timed out');

# No session ends within the grace: refused as full, after the grace.
$node->append_conf('postgresql.conf', "connbudget.reject_grace = '300ms'\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('connbudget.reject_grace') = '300ms'})
  or die 'reject_grace was not reloaded';
my $refused = login($node, %api);
ok(!$refused->{ok}, 'with no session ending, the login is refused');
is($refused->{sqlstate}, '53300', 'with SQLSTATE 53300');
is($refused->{message}, 'connection budget "api" is full', 'as the budget is full');
is($refused->{detail},
	'2 of 2 connections in use (application_name "backend", role "api", database "postgres").',
	'with the counts of when the grace ran out');
$status = status_of($node);
is_deeply([ @{ $status->{api} }{qw(waiting queued rejected timed_out)} ], [ 0, 0, 1, 0 ],
	'counted as rejected, not as queued or timed out; nobody left waiting');

# No grace: refused at once, never waiting.
$node->append_conf('postgresql.conf', "connbudget.reject_grace = 0\n");
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('connbudget.reject_grace') = '0'})
  or die 'reject_grace was not reloaded';
$refused = login($node, %api);
is($refused->{message}, 'connection budget "api" is full', 'without a grace the login is refused too');
is(status_of($node)->{api}{rejected}, 2, 'counted as rejected too');
($verdict, $reason) = split /\|/,
  $node->safe_psql('postgres', "SELECT verdict, reason FROM connbudget.explain('backend', 'api', 'postgres')");
is($reason, 'the budget is full and refuses beyond max_connections', 'and explain() names no grace');
is(status_of($node)->{api}{queued}, 0, 'a grace is no queue: nothing was counted as queued');

logout($_) for @held;
$node->stop;
done_testing();

# connbudget.terminate_excess(): a budget over its lowered max_connections loses its
# longest-idle sessions, never one inside a transaction unless asked; it returns the
# sessions it ended, says why when it could not end enough, works for default, and the
# backends it frees go to logins waiting for shared capacity.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('terminate');
$node->safe_psql('postgres', q{
	CREATE ROLE worker LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections)
	VALUES ('extraction', 'extraction_worker', 5);
});
reload_budgets($node);
my %worker = (user => 'worker', application_name => 'extraction_worker');

# Runs terminate_excess in a superuser session (counted under exempt); returns its rows
# as "pid|state" lines and what psql printed on stderr (notices).
sub terminate_excess
{
	my ($budget, $arguments) = @_;
	my (undef, $rows, $notices) = $node->psql('postgres',
		"SELECT pid, state FROM connbudget.terminate_excess('$budget'" . ($arguments // '') . ')');
	return ($rows, $notices);
}

sub state_of
{
	my ($session) = @_;
	return $node->safe_psql('postgres', "SELECT state FROM pg_stat_activity WHERE pid = $session->{pid}");
}

# Five sessions: T opens a transaction first (so it has been in its state the longest),
# then the others run a query in the order B, D, A, C: B has been idle the longest.
# Waits until the server's clock is past the moment session $session last changed state.
sub idle_after
{
	my ($session) = @_;
	return poll_until($node,
		"SELECT clock_timestamp() > state_change + interval '1 ms' FROM pg_stat_activity WHERE pid = $session->{pid}");
}

my %s;
for my $name (qw(A B C D T))
{
	$s{$name} = login($node, %worker);
	ok($s{$name}{ok}, "session $name logs in");
}
ok(query($s{T}, 'BEGIN')->{ok} && query($s{T}, 'SELECT 1')->{ok}, 'T is inside a transaction');
my $previous;
for my $name (qw(B D A C))
{
	# Each goes idle strictly after the one before (the server's clock has moved on).
	ok(idle_after($previous), "time has passed since the previous one went idle") if $previous;
	is(query($s{$name}, 'SELECT 1')->{rows}[0][0], '1', "$name runs a query and goes idle");
	$previous = $s{$name};
}
is($node->safe_psql('postgres',
		"SELECT string_agg(pid::text, ',' ORDER BY state_change) FROM pg_stat_activity WHERE state = 'idle' AND application_name = 'extraction_worker'"),
	join(',', map { $s{$_}{pid} } qw(B D A C)),
	'pg_stat_activity shows B, D, A, C idle, in that order');
is(status_of($node)->{extraction}{active}, 5, 'the budget holds its 5 sessions');

# Lowered to 2: the three longest-idle sessions end; C (idle) and T (in a transaction) stay.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET max_connections = 2 WHERE name = 'extraction'");
reload_budgets($node);
my ($rows, $notices) = terminate_excess('extraction');
is($rows, join("\n", map { "$s{$_}{pid}|idle" } qw(B D A)),
	'terminate_excess ends B, D and A, longest idle first, and returns them');
is($notices, '', 'with no notice: the whole excess was ended');
for my $name (qw(B D A))
{
	my $ended = ended_by_server($s{$name});
	is($ended->{sqlstate}, '57P01', "$name was terminated (admin_shutdown)");
	is($ended->{message}, 'terminating connection due to administrator command', "$name got the usual message");
}
ok(wait_for_active($node, 'extraction', 2), 'status.active falls to 2');
is(state_of($s{T}), 'idle in transaction', 'T is still inside its transaction');
is(state_of($s{C}), 'idle', 'C is still idle');

($rows, $notices) = terminate_excess('extraction', ', include_in_transaction => true');
is($rows, '', 'a budget within its limit: no rows, even with include_in_transaction');
like($notices, qr/NOTICE:  connection budget "extraction" holds 2 of its 2 connections; nothing to end/,
	'and a notice with the numbers');

# Lowered to 0: C ends; T is inside a transaction and stays, and the notice says so.
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET max_connections = 0 WHERE name = 'extraction'");
reload_budgets($node);
($rows, $notices) = terminate_excess('extraction');
is($rows, "$s{C}{pid}|idle", 'only the idle session C is ended');
like($notices, qr/NOTICE:  connection budget "extraction" still holds 1 session beyond its max_connections \(0\)/,
	'the notice says one session is still beyond the limit');
like($notices, qr/DETAIL:  1 session is inside a transaction or running a query\./, 'and why');
like($notices, qr/HINT:  Call connbudget.terminate_excess\('extraction', include_in_transaction => true\) to end them too\./,
	'and how to end it');
is(ended_by_server($s{C})->{sqlstate}, '57P01', 'C was terminated');
ok(wait_for_active($node, 'extraction', 1), 'status.active falls to 1');
is(query($s{T}, 'SELECT 2')->{rows}[0][0], '2', 'T still works inside its transaction');

# include_in_transaction => true ends T too; on return its slot is already given back.
my $after = $node->safe_psql('postgres', q{
	SELECT pid, state, application_name, role_name, database_name, client_addr IS NULL,
	       state_change > backend_start
	  FROM connbudget.terminate_excess('extraction', include_in_transaction => true);
	SELECT active FROM connbudget.status WHERE budget = 'extraction';});
is($after, "$s{T}{pid}|idle in transaction|extraction_worker|worker|postgres|t|t\n0",
	'include_in_transaction => true ends T, and status.active is 0 when it returns');
is(ended_by_server($s{T})->{sqlstate}, '57P01', 'T was terminated');

# default is limited by connbudget.default_max_connections.
my @misc = map { login($node, user => 'worker', application_name => 'misc') } 1 .. 2;
ok($misc[0]{ok} && $misc[1]{ok}, 'two sessions fall into default');
query($misc[1], 'SELECT 1');
ok(idle_after($misc[1]), 'time has passed since the second went idle');
query($misc[0], 'SELECT 1');
$node->append_conf('postgresql.conf', "connbudget.default_max_connections = 1\n");
$node->reload;
ok($node->poll_query_until('postgres', "SELECT max_connections = 1 FROM connbudget.status WHERE budget = 'default'"),
	'default is limited to 1 after the reload');
($rows) = terminate_excess('default');
is($rows, "$misc[1]{pid}|idle", 'terminate_excess(\'default\') ends its longest-idle session');
is(ended_by_server($misc[1])->{sqlstate}, '57P01', 'which was terminated');
is(query($misc[0], 'SELECT 3')->{rows}[0][0], '3', 'the other default session stays');
logout($misc[0]);
$node->stop;

# An incident: "greedy" holds 7 of a server with 9 backends for ordinary logins, 2 of them
# the waiting room (so that this test's own superuser sessions fit beside a waiting
# login); a login of "other" waits for shared capacity. Lowering greedy to 5 and ending
# its excess lets that login in.
my $small = start_node('terminate_capacity',
	conf => "max_connections = 12\nsuperuser_reserved_connections = 3\nconnbudget.waiting_room = 2\n");
$small->safe_psql('postgres', q{
	CREATE ROLE worker LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout)
	VALUES ('greedy', 'greedy', 7, 'reject', NULL), ('other', 'other', 5, 'queue', '50s');
});
reload_budgets($small);
my @greedy = map { login($small, user => 'worker', application_name => 'greedy') } 1 .. 7;
is(scalar(grep { $_->{ok} } @greedy), 7, 'greedy holds 7 sessions');
my $other = start_login($small, user => 'worker', application_name => 'other');
ok(wait_for_waiting($small, 'other', 1), 'a login of "other" waits for shared capacity');
$small->safe_psql('postgres', "UPDATE connbudget.budgets SET max_connections = 5 WHERE name = 'greedy'");
reload_budgets($small);
ok(!answered($other, 0.3), 'lowering greedy\'s max_connections alone lets nobody in');
is($small->safe_psql('postgres', "SELECT count(*) FROM connbudget.terminate_excess('greedy')"), '2',
	'terminate_excess ends the 2 sessions beyond greedy\'s new limit');
my $admitted = finish_login($other);
ok($admitted->{ok}, 'the waiting login of "other" is admitted with the backends they gave back');
ok(wait_for_active($small, 'greedy', 5), 'greedy holds 5');
logout($admitted);
$small->stop;
done_testing();

# Exact capacity. A login pg_connbudget admits is never refused afterwards by PostgreSQL's
# own check of the slots it keeps for superusers, whatever other logins do: here a storm of
# refused worker logins, each holding a backend while it starts and ends, while the API
# logs in again and again within its reservation. When every budget's max_connections fits
# the server, waiting logins never take a backend another budget needs. A full server is
# said to be full.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;
use POSIX ();
use Time::HiRes qw(time);

# max_connections 20, 3 kept for superusers: 17 for ordinary logins.
my $node = start_node('exact_capacity', conf => "max_connections = 20\n");
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved) VALUES
	  ('api',     'backend', 5,  5),
	  ('workers', 'worker',  12, 0);
});
reload_budgets($node);
my %api = (user => 'app', application_name => 'backend');
my %worker = (user => 'app', application_name => 'worker');

# The workers hold their 12, the API 4 of its 5: one backend for ordinary logins is left,
# and PostgreSQL's 3 for superusers.
my @held = map { login($node, %worker) } 1 .. 12;
push @held, map { login($node, %api) } 1 .. 4;
is(scalar(grep { $_->{ok} } @held), 16, 'workers hold 12 sessions, the API 4');
is(query($held[-1], 'SHOW superuser_reserved_connections')->{rows}[0][0], '3',
	'an admitted session sees the server\'s settings as they are');

# The storm: two clients log in as workers as fast as they can; every login is refused,
# but while it starts and ends it holds one of the server's backends.
my $storm_logins = 400;
my @storm;
for my $client (1 .. 2)
{
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my %seen;
		for (1 .. $storm_logins)
		{
			my $r = login($node, %worker);
			$seen{ $r->{ok} ? 'admitted' : ($r->{sqlstate} // '') . ' ' . ($r->{message} // '') }++;
			logout($r) if $r->{ok};
		}
		# The counts go to a file; _exit skips the END blocks that would stop the node.
		open(my $out, '>', "$PostgreSQL::Test::Utils::tmp_check/storm_$client") or POSIX::_exit(2);
		print $out "$_\t$seen{$_}\n" for sort keys %seen;
		close $out;
		POSIX::_exit(0);
	}
	push @storm, $pid;
}

# Meanwhile the API's fifth session comes and goes, again and again.
my ($api_ok, @api_failed) = (0);
my $started = time;
for (1 .. 150)
{
	my $session = login($node, %api);
	my $answer = $session->{ok} ? query($session, 'SELECT 1') : $session;
	if ($answer->{ok})
	{
		$api_ok++;
	}
	else
	{
		push @api_failed, ($session->{ok} ? 'its query: ' : 'its login: ') . join(' ', grep { defined } @{$answer}{qw(sqlstate message detail)});
	}
	logout_and_wait($session);
}
my $seconds = time - $started;
waitpid($_, 0) for @storm;
is($api_ok, 150, 'the API logged in 150 times during the storm, every time within its reservation')
  or diag explain \@api_failed;
my %storm;
for my $client (1 .. 2)
{
	open(my $in, '<', "$PostgreSQL::Test::Utils::tmp_check/storm_$client") or next;
	while (my $line = <$in>)
	{
		chomp $line;
		my ($what, $count) = split /\t/, $line;
		$storm{$what} += $count;
	}
}
my $budget_full = $storm{'53300 connection budget "workers" is full'} // 0;
ok($budget_full > 0, "the storm's logins were refused by the budget ($budget_full of " . 2 * $storm_logins . ')')
  or diag explain \%storm;
is($storm{admitted} // 0, 0, 'and none got in');
note(sprintf('API: 150 logins in %.1f s beside %d storm logins', $seconds, 2 * $storm_logins));
my $log = slurp_file($node->logfile);
my $postgres_refusals = () = $log =~ /remaining connection slots are reserved/g;
is($postgres_refusals, 0, "PostgreSQL's own check refused no login pg_connbudget had admitted");
ConnBudgetTest::logout($_) for @held;
ok(wait_for_active($node, $_, 0), "$_ has no session left") for qw(api workers);

# When every budget's max_connections fits the server (8 + 4 + 5 = 17), each budget may
# always have its max_connections: a full budget's logins may not wait in the backends
# the others have not used yet.
$node->safe_psql('postgres', q{
	DELETE FROM connbudget.budgets;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved, on_full, queue_timeout) VALUES
	  ('api',        'backend',    5, 0, 'reject', NULL),
	  ('extraction', 'extraction', 8, 0, 'queue',  '60s'),
	  ('semantic',   'semantic',   4, 0, 'queue',  '60s');
});
reload_budgets($node);
my $monitor = login($node);    # a superuser session, watched as one of the backends
my @extraction = map { login($node, user => 'app', application_name => 'extraction') } 1 .. 8;
is(scalar(grep { $_->{ok} } @extraction), 8, 'extraction holds its 8');
my $ninth = login($node, user => 'app', application_name => 'extraction');
is($ninth->{message}, 'remaining connections are reserved for other connection budgets',
	'a ninth extraction login may not wait in a backend the others are entitled to');
like($ninth->{detail}, qr/8 of the server's 17 connections are free and 9 of them are reserved for other budgets/,
	'and is told the numbers');
my @api = map { login($node, %api) } 1 .. 5;
is(scalar(grep { $_->{ok} } @api), 5, 'the API, which reserves nothing, still gets its 5');
my @semantic = map { login($node, user => 'app', application_name => 'semantic') } 1 .. 4;
is(scalar(grep { $_->{ok} } @semantic), 4, 'and semantic its 4');
is(query($monitor, q{SELECT active FROM connbudget.status WHERE budget = 'exempt'})->{rows}[0][0], '1',
	'beside this superuser session');

# Now the server is full: the refusal says so, and of what.
my $full = login($node, user => 'app', application_name => 'semantic');
is($full->{sqlstate}, '53300', 'a login beyond it is refused with SQLSTATE 53300');
is($full->{message}, 'the server has no connection left for connection budget "semantic"',
	'saying that the server is full');
like($full->{detail},
	qr/^All 17 of the server's connections for ordinary logins are in use: 17 by sessions of connection budgets, 0 by logins waiting in a queue, 0 by logins still starting or ending, 1 by superusers\. superuser_reserved_connections keeps 3 more for superusers\.$/,
	'and of what');
is(query($monitor, q{SELECT rejected_server_full || '/' || rejected_reserved FROM connbudget.status WHERE budget = 'semantic'})->{rows}[0][0],
	'1/0', 'counted as rejected_server_full');
ConnBudgetTest::logout($_) for @extraction, @api, @semantic, $monitor;

# With no budgets at all, a full server says it is full, not that it is reserved.
$node->safe_psql('postgres', 'DELETE FROM connbudget.budgets');
reload_budgets($node);
my @anyone = map { login($node, user => 'app') } 1 .. 17;
is(scalar(grep { $_->{ok} } @anyone), 17, 'without budgets 17 logins get in');
my $eighteenth = login($node, user => 'app');
is($eighteenth->{message}, 'the server has no connection left for connection budget "default"',
	'the eighteenth is told the server is full');

# A reservation added while the server is full is logged once, not again at every reload.
my $offset = -s $node->logfile;
$node->safe_psql('postgres', q{INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved) VALUES ('late', 'late', 5, 5)});
reload_budgets($node);
ok($node->wait_for_log(qr/WARNING:  pg_connbudget: the new budgets found the server full: 0 waiting logins gave their place, \d+ connections are still in use beyond what the budgets' entitlements leave/, $offset),
	'a reservation that finds the server full is logged');
$node->reload;
reload_budgets($node);
is(scalar(() = slurp_file($node->logfile, $offset) =~ /found the server full/g), 1, 'once, not at every reload');
ConnBudgetTest::logout($_) for @anyone;

$node->stop;
done_testing();

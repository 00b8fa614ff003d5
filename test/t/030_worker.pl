# The background worker: restarts after it is killed while logins go on unblocked; keeps
# the last good budgets (and says why, once) when a row cannot be loaded; enforces nothing
# once the extension is dropped; reload() reports the live generation or the error; a
# missing database does not lock anybody out, and the worker's attempts to connect to it
# back off.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('worker');
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections)
	VALUES ('pair', 'pair', 2);
});
my $generation = reload_budgets($node);
ok($generation > 0, 'reload() returns the live generation');
my %pair = (user => 'app', application_name => 'pair');
my @held = map { login($node, %pair) } 1 .. 2;

# Kill the worker: logins never wait for it, budgets stay enforced, and it comes back.
my $worker_pid = $node->safe_psql('postgres', 'SELECT pid FROM connbudget.worker');
ok($worker_pid > 0, 'the worker runs');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker_pid)");
my ($admitted, $refused) = (0, 0);
for (1 .. 20)
{
	login($node, user => 'app', application_name => 'other')->{ok} ? $admitted++ : 0;
	login($node, %pair)->{ok} ? 0 : $refused++;
}
is($admitted, 20, 'logins go on while the worker is down');
is($refused, 20, 'and the budgets stay enforced');
ok($node->poll_query_until('postgres',
		"SELECT pid IS NOT NULL AND pid <> $worker_pid FROM connbudget.worker"),
	'the worker restarts');
is(reload_budgets($node), $generation, 'the restarted worker serves reload() with the same budgets');

# A row that cannot be loaded (triggers bypassed) keeps the last good budgets.
$node->safe_psql('postgres', q{
	SET session_replication_role = replica;
	INSERT INTO connbudget.budgets (name, max_connections) VALUES ('default', 5);
});
my $log_offset = -s $node->logfile;
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'SELECT connbudget.reload()');
isnt($ret, 0, 'reload() fails on a bad row');
like($stderr, qr/could not load budgets: budget name "default" is reserved for the implicit budget/,
	'and says which row and why');
like($stderr, qr/The budgets of generation $generation stay in force/, 'and what stays in force');
$node->psql('postgres', 'SELECT connbudget.reload()');
like($node->safe_psql('postgres', 'SELECT last_error FROM connbudget.worker'),
	qr/budget name "default" is reserved/, 'connbudget.worker shows the error');
ok(!login($node, %pair)->{ok}, 'the last good budgets are still enforced');
my $log = slurp_file($node->logfile, $log_offset);
my $warnings = () = $log =~ /WARNING:  pg_connbudget: could not load budgets: budget name "default"/g;
is($warnings, 1, 'the worker logs the same failure once, not per attempt');

$node->safe_psql('postgres', q{
	SET session_replication_role = replica;
	DELETE FROM connbudget.budgets WHERE name = 'default';
});
is(reload_budgets($node), $generation, 'after the fix the same budgets load');
is($node->safe_psql('postgres', 'SELECT last_error IS NULL FROM connbudget.worker'), 't',
	'and the error is gone');

# Dropping the extension in connbudget.database stops enforcement at once: no budgets.
$log_offset = -s $node->logfile;
$node->psql('postgres', 'SET client_min_messages = debug1; DROP EXTENSION pg_connbudget',
	stdout => \$stdout, stderr => \$stderr, on_error_die => 1);
like($stderr, qr/pg_connbudget: the worker is woken when this transaction commits/,
	'DROP EXTENSION wakes the worker at commit (its event trigger)');
ok($node->wait_for_log(qr/LOG:  pg_connbudget: extension pg_connbudget is not installed in database "postgres": no budgets are enforced/,
		$log_offset), 'the worker sees the extension go and says budgets are no longer enforced');
my $unlimited = login($node, %pair);
ok($unlimited->{ok}, 'the budget that was full no longer limits anyone');
logout($unlimited);
$node->safe_psql('postgres', q{
	CREATE EXTENSION pg_connbudget;
	INSERT INTO connbudget.budgets (name, application_name, max_connections) VALUES ('pair', 'pair', 3);
});
ok(reload_budgets($node) > $generation, 'recreating the extension loads its budgets');
ok(login($node, %pair)->{ok}, 'which take effect');
logout($_) for @held;

# A connbudget.database that does not exist: nobody is locked out, and the view says why.
my $orphan = start_node('orphan', conf => "connbudget.database = 'no_such_db'\n");
$orphan->safe_psql('postgres', 'CREATE ROLE app LOGIN');
ok(login($orphan, user => 'app', application_name => 'pair')->{ok},
	'logins work without a worker');
ok($orphan->poll_query_until('postgres',
		q{SELECT last_error LIKE 'could not connect to database "no_such_db"%' FROM connbudget.worker}),
	'connbudget.worker says the worker cannot connect');
my ($r, $out, $err) = $orphan->psql('postgres', 'SET statement_timeout = 0; SELECT connbudget.reload()');
isnt($r, 0, 'reload() fails instead of hanging forever');
like($err, qr/could not load budgets: could not connect to database "no_such_db"/, 'and says why');

# Its attempts back off: 1, 2, 4 ... s apart (as the server log's times show), not one a
# second: a new process starts with its latch set, which must not cut the wait short.
my $attempts = sub {
	my @times;
	for my $line (split /\n/, slurp_file($orphan->logfile))
	{
		push @times, $1 * 3600 + $2 * 60 + $3
		  if $line =~ /^\S+ (\d+):(\d+):([\d.]+) \S+ \[\d+\] .*FATAL:  database "no_such_db" does not exist/;
	}
	return @times;
};
my $before = () = $attempts->();
my @times;
for (1 .. $PostgreSQL::Test::Utils::timeout_default * 10)
{
	@times = $attempts->();
	last if @times >= $before + 3;
	select(undef, undef, undef, 0.1);    # poll the log
}
cmp_ok(scalar(@times), '>=', $before + 3, 'the worker tried again and again');
my @gaps = ($times[-2] - $times[-3], $times[-1] - $times[-2]);
cmp_ok($gaps[1], '>', $gaps[0] + 0.5, sprintf('each time waiting longer (%.1f s, then %.1f s)', @gaps));
$orphan->stop;

$node->stop;
done_testing();

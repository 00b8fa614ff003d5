# connbudget.history: the worker samples every budget each connbudget.sample_interval;
# each row has the budget's sessions and what its counters gained, and the rows add up to
# the counters of connbudget.status, across a restart of the worker and reset_stats(). A
# reload changes the interval at once; the ring keeps the newest connbudget.history_size
# rows; a restart starts it over (counters carried over are no gains); history_size = 0
# turns it off; a standby samples its own logins.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('history',
	conf => "connbudget.sample_interval = '100ms'\nrestart_after_crash = on\n");
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout)
	VALUES ('api', 'backend', 1, 'reject', NULL), ('workers', 'worker', 1, 'queue', '60s');
});
reload_budgets($node);
my %api = (user => 'app', application_name => 'backend');
my %worker = (user => 'app', application_name => 'worker');

# The history with each row's place (n, oldest first).
my $numbered = q{connbudget.history() WITH ORDINALITY AS h(sampled_at, budget, max_connections,
	active, waiting, admitted, rejected, queued, timed_out, abandoned, n)};

# True once, for each budget named, the gains of its rows add up to its counters in status.
sub adds_up
{
	my ($node, $budgets, $since) = @_;
	my $where = $since ? "WHERE sampled_at > $since" : '';
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = cardinality('{$budgets}'::text[])
		       AND bool_and(h.admitted = s.admitted AND h.rejected = s.rejected AND h.queued = s.queued
		                    AND h.timed_out = s.timed_out AND h.abandoned = s.abandoned)
		  FROM connbudget.status s
		  JOIN (SELECT budget, sum(admitted) AS admitted, sum(rejected) AS rejected,
		               sum(queued) AS queued, sum(timed_out) AS timed_out, sum(abandoned) AS abandoned
		          FROM connbudget.history h $where GROUP BY budget) h USING (budget)
		 WHERE budget = ANY ('{$budgets}')});
}

sub history_rows
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT count(*) FROM connbudget.history');
}

# Sets connbudget.sample_interval by reload and returns once the worker runs with it. A
# new session sees the new value only after the postmaster has signalled its children;
# the worker answers a second reload() only in a pass of its loop that began after it
# answered the first, so after the signal had arrived.
sub set_sample_interval
{
	my ($node, $value) = @_;
	$node->safe_psql('postgres', "ALTER SYSTEM SET connbudget.sample_interval = '$value'");
	$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
	$node->poll_query_until('postgres', "SELECT current_setting('connbudget.sample_interval') = '$value'")
	  or die "the server did not take connbudget.sample_interval = $value";
	reload_budgets($node) for 1 .. 2;
}

# Every budget is sampled, in status order.
ok($node->poll_query_until('postgres', qq{
		SELECT string_agg(budget, ',' ORDER BY n) FROM $numbered
		 WHERE sampled_at = (SELECT max(sampled_at) FROM connbudget.history)},
		'api,workers,default,exempt'),
	'each sample has a row for every budget, in status order');
is($node->safe_psql('postgres',
		"SELECT DISTINCT max_connections FROM connbudget.history WHERE budget = 'api'"),
	'1', 'rows carry the budget limit');

# Sessions and waiting logins are sampled.
my $api_session = login($node, %api);
my $worker_session = login($node, %worker);
my $waiter = start_login($node, %worker);
ok(wait_for_waiting($node, 'workers', 1), 'a worker login waits');
ok($node->poll_query_until('postgres', q{
		SELECT count(*) > 0 FROM connbudget.history w JOIN connbudget.history a USING (sampled_at)
		 WHERE w.budget = 'workers' AND w.active = 1 AND w.waiting = 1
		   AND a.budget = 'api' AND a.active = 1}),
	'a sample shows the sessions and the waiting login');

# Logins of every outcome: the gains add up to the counters.
is(login($node, %api)->{sqlstate}, '53300', 'api refuses a second login');
close $waiter->{socket};
ok(wait_for_waiting($node, 'workers', 0), 'the waiter gives up');
$node->safe_psql('postgres', "UPDATE connbudget.budgets SET queue_timeout = '200ms' WHERE name = 'workers'");
reload_budgets($node);
is(login($node, %worker)->{sqlstate}, '53300', 'a worker login times out');
logout(login($node, user => 'app', application_name => 'other'));
logout($_) for $api_session, $worker_session;
ok(adds_up($node, 'api,workers,default'),
	'for every budget, the gains of its rows add up to its counters in status');
is($node->safe_psql('postgres', q{
		SELECT string_agg(format('%s: %s admitted, %s rejected, %s queued, %s timed out, %s abandoned',
		                         budget, admitted, rejected, queued, timed_out, abandoned), '; ' ORDER BY budget)
		  FROM (SELECT budget, sum(admitted) AS admitted, sum(rejected) AS rejected, sum(queued) AS queued,
		               sum(timed_out) AS timed_out, sum(abandoned) AS abandoned
		          FROM connbudget.history WHERE budget IN ('api', 'workers') GROUP BY budget) sums}),
	'api: 1 admitted, 1 rejected, 0 queued, 0 timed out, 0 abandoned; '
	  . 'workers: 1 admitted, 0 rejected, 2 queued, 1 timed out, 1 abandoned',
	'which are the outcomes of the logins above');

# A restarted worker goes on from the baselines in shared memory: nothing is counted twice.
my $worker_pid = $node->safe_psql('postgres', 'SELECT pid FROM connbudget.worker');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($worker_pid)");
ok($node->poll_query_until('postgres', "SELECT pid IS NOT NULL AND pid <> $worker_pid FROM connbudget.worker"),
	'the worker restarts');
my $restarted_at = $node->safe_psql('postgres', "SELECT quote_literal(clock_timestamp())");
logout(login($node, %api));
ok($node->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM connbudget.history WHERE sampled_at > $restarted_at"),
	'the restarted worker samples');
ok(adds_up($node, 'api,workers,default'), 'and the gains still add up to the counters');

# A reload to a long interval stops sampling at once.
set_sample_interval($node, '1h');
my $rows = history_rows($node);
my $api_before_reset = $node->safe_psql('postgres', "SELECT admitted FROM connbudget.status WHERE budget = 'api'");
is($api_before_reset, 2, 'api has admitted 2 logins');

# reset_stats(), then more logins than before: the reset starts a new series of api's
# counters, whose first row counts all of it (a plain difference would say 1).
$node->safe_psql('postgres', 'SELECT connbudget.reset_stats()');
logout(login($node, %api)) for 1 .. 3;
# Well past when the old 100 ms interval would have sampled again, and a pass of the
# worker's loop that began after that.
ok($node->poll_query_until('postgres',
		"SELECT clock_timestamp() > (SELECT max(sampled_at) FROM connbudget.history) + interval '500 ms'"),
	'half a second passes after the last sample');
reload_budgets($node) for 1 .. 2;
is(history_rows($node), $rows, 'no sample is taken by the passes of the worker since, with sample_interval = 1h');

# Back to 100 ms by reload: samples resume at once.
set_sample_interval($node, '100ms');
ok($node->poll_query_until('postgres', "SELECT count(*) > $rows FROM connbudget.history"),
	'samples resume after a reload to 100 ms');
my $reset_at = $node->safe_psql('postgres',
	"SELECT quote_literal(stats_reset) FROM connbudget.status WHERE budget = 'api'");
is($node->safe_psql('postgres', qq{
		SELECT admitted FROM connbudget.history WHERE budget = 'api' AND sampled_at > $reset_at
		 ORDER BY sampled_at LIMIT 1}),
	3, 'the first row after reset_stats() counts the 3 logins since the reset');
ok(adds_up($node, 'api,workers,default', $reset_at), 'the rows since the reset add up to the counters');

# A standby samples its own budgets and logins; nothing is written there.
$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('history_standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
ok($standby->poll_query_until('postgres', q{SELECT count(*) > 0 FROM connbudget.history WHERE budget = 'api'}),
	'a standby samples the budgets it has from the primary');
logout(login($standby, %api));
ok(adds_up($standby, 'api'), 'and its own logins');
$standby->stop;

# A clean restart starts the history over, from the counters the server starts with (those
# a clean shutdown saved): they are a baseline, not gains.
$node->restart;
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM connbudget.history WHERE budget = 'api'}),
	'after a restart the worker samples again');
is($node->safe_psql('postgres', q{SELECT sum(admitted) FROM connbudget.history WHERE budget = 'api'}),
	0, 'and counts no api login, as none happened since');

# A crash restart rebuilds shared memory: the history starts over.
my $before_crash = $node->safe_psql('postgres', "SELECT quote_literal(clock_timestamp())");
my $victim = login($node, %api);
my $pid = $node->safe_psql('postgres', "SELECT pid FROM connbudget.sessions WHERE budget = 'api'");
my $crash_offset = -s $node->logfile;
kill 'KILL', $pid;
ok($node->wait_for_log(qr/all server processes terminated; reinitializing/, $crash_offset),
	'the server reinitializes after the crash');
ok(wait_for_server($node), 'and takes logins again');
ok($node->poll_query_until('postgres', 'SELECT budgets = 2 FROM connbudget.worker'),
	'after a crash restart the worker loads the budgets again');
ok($node->poll_query_until('postgres', "SELECT count(*) > 0 FROM connbudget.history"),
	'and samples them');
is($node->safe_psql('postgres', "SELECT count(*) FROM connbudget.history WHERE sampled_at < $before_crash"),
	0, 'into an empty history');
$node->stop;

# A small ring keeps the newest history_size rows, oldest first.
my $small = start_node('history_small', conf => "connbudget.sample_interval = '100ms'\nconnbudget.history_size = 6\n");
is($small->safe_psql('postgres', 'SHOW connbudget.history_size'), 6, 'history_size is 6 rows');
ok($small->poll_query_until('postgres', 'SELECT count(*) = 6 FROM connbudget.history'), 'the ring fills');
my $newest = $small->safe_psql('postgres', 'SELECT quote_literal(max(sampled_at)) FROM connbudget.history');
ok($small->poll_query_until('postgres', "SELECT min(sampled_at) > $newest FROM connbudget.history"),
	'newer samples overwrite every row it had');
is($small->safe_psql('postgres', qq{
		SELECT format('%s rows, %s samples of %s budgets, oldest first: %s', count(*),
		              count(DISTINCT sampled_at), count(DISTINCT budget),
		              bool_and(sampled_at >= previous OR previous IS NULL)::text)
		  FROM (SELECT sampled_at, budget, lag(sampled_at) OVER (ORDER BY n) AS previous FROM $numbered) rows}),
	'6 rows, 3 samples of 2 budgets, oldest first: true',
	'and it holds history_size rows: the newest 3 samples of default and exempt');

# history_size = 0: no history, no error, the worker goes on.
$small->append_conf('postgresql.conf', "connbudget.history_size = 0\n");
$small->restart;
my $log_offset = -s $small->logfile;
reload_budgets($small);
is($small->safe_psql('postgres', 'SELECT pid IS NOT NULL AND last_error IS NULL FROM connbudget.worker'),
	't', 'with history_size = 0 the worker runs and loads budgets');
# Samples were due (every 100 ms) since the worker loaded the budgets, and a pass of its
# loop began after that.
ok($small->poll_query_until('postgres',
		"SELECT clock_timestamp() > (SELECT loaded_at FROM connbudget.worker) + interval '500 ms'"),
	'half a second passes after the load');
reload_budgets($small) for 1 .. 2;
is(history_rows($small), 0, 'and the history is empty, without an error');
unlike(slurp_file($small->logfile, $log_offset), qr/ERROR|WARNING|FATAL/, 'nothing is logged against it');
$small->stop;

done_testing();

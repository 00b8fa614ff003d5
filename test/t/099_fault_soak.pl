# Fault soak: clients log in and out across reject, queue and reserved budgets, drop their
# sockets mid-login and mid-queue, send wrong passwords; meanwhile backends are killed
# (crash restarts), sessions and waiters terminated, budgets edited and reloaded, the
# worker killed, the server restarted. At each quiet point (clients paused and gone) every
# budget holds exactly the sessions that exist (none), nobody waits, and every login that
# queued left the queue in exactly one counted way. SOAK_SECONDS (default 20) sets how
# long; run it for 30 minutes with SOAK_SECONDS=1800.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use POSIX ();
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $seconds = $ENV{SOAK_SECONDS} // 20;
my $clients = $ENV{SOAK_CLIENTS} // 6;
my $node = start_node('soak', conf => "max_connections = 30\nrestart_after_crash = on\n"
	  . "authentication_timeout = '30s'\nconnbudget.sample_interval = '200ms'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	SET password_encryption = 'scram-sha-256';
	CREATE ROLE secret LOGIN PASSWORD 'right';
	INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved, on_full, queue_timeout, max_queue, idle_reclaim) VALUES
	  ('rej', 'rej', 4, 0, 'reject', NULL,  NULL, NULL),
	  ('q',   'q',   3, 0, 'queue',  '2s',  6,    '300ms'),
	  ('res', 'res', 3, 2, 'queue',  '1s',  4,    NULL);
});
my $hba = $node->data_dir . '/pg_hba.conf';
my $trust = slurp_file($hba);
open(my $hba_file, '>', $hba) or die "cannot write $hba: $!";
print $hba_file "local all secret scram-sha-256\n$trust";
close $hba_file;
$node->reload;
reload_budgets($node);

my $dir = $PostgreSQL::Test::Utils::tmp_check;
my ($pause, $stop) = ("$dir/soak_pause", "$dir/soak_stop");
my @apps = qw(rej q res other);

# A client: logs in and out at random until told to stop; while paused, holds nothing and
# says so. It never dies of an error: every failure is a result.
sub client
{
	my ($n) = @_;
	srand($n * 7919 + $$);
	while (!-e $stop)
	{
		if (-e $pause)
		{
			if (open(my $ready, '>', "$dir/soak_ready_$n")) { close $ready; }
			usleep(20_000);
			next;
		}
		unlink "$dir/soak_ready_$n";
		my $app = $apps[ int(rand(@apps)) ];
		my $dice = rand;
		if ($dice < 0.55)
		{
			my $s = login($node, user => 'app', application_name => $app);
			next unless $s->{ok};
			query($s, 'SELECT pg_sleep(' . rand(0.05) . ')') if rand() < 0.7;
			usleep(int(rand(150_000))) if rand() < 0.3;
			logout($s);
		}
		elsif ($dice < 0.75)    # the client goes away while it logs in or waits
		{
			my $pending = start_login($node, user => 'app', application_name => $app);
			usleep(int(rand(30_000)));
			close $pending->{socket} if $pending->{socket};
		}
		elsif ($dice < 0.85)    # a wrong password
		{
			my $pid = fork();
			if (defined $pid && $pid == 0)
			{
				open(STDERR, '>', '/dev/null');
				$ENV{PGPASSWORD} = 'wrong';
				exec('psql', '-X', '-q', '-h', $node->host, '-p', $node->port, '-U', 'secret', '-d', 'postgres',
					'-c', 'SELECT 1', '-o', '/dev/null') or POSIX::_exit(1);
			}
			waitpid($pid, 0) if defined $pid;
		}
		else    # an idle session for a while (idle reclaim may end it)
		{
			my $s = login($node, user => 'app', application_name => $app);
			next unless $s->{ok};
			usleep(200_000 + int(rand(300_000)));
			logout($s);
		}
	}
	POSIX::_exit(0);    # _exit: the END blocks would stop the node
}

my @children;
for my $n (1 .. $clients)
{
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	client($n) if $pid == 0;
	push @children, $pid;
}

# The faults, one at a time, at random.
my @faults = (
	[ 'terminate a session', sub { $node->psql('postgres', q{SELECT pg_terminate_backend(pid) FROM connbudget.sessions WHERE state = 'active' AND budget <> 'exempt' ORDER BY random() LIMIT 1}) } ],
	[ 'terminate a waiter', sub { $node->psql('postgres', q{SELECT pg_terminate_backend(pid) FROM connbudget.sessions WHERE state = 'waiting' ORDER BY random() LIMIT 1}) } ],
	[ 'cancel a waiter', sub { $node->psql('postgres', q{SELECT pg_cancel_backend(pid) FROM connbudget.sessions WHERE state = 'waiting' ORDER BY random() LIMIT 1}) } ],
	[ 'edit a budget', sub { $node->psql('postgres', "UPDATE connbudget.budgets SET max_connections = " . (1 + int(rand(5))) . " WHERE name = '" . (qw(rej q res))[ int(rand(3)) ] . "'") } ],
	[ 'reload', sub { $node->psql('postgres', 'SELECT connbudget.reload()') } ],
	[ 'kill the worker', sub { $node->psql('postgres', q{SELECT pg_terminate_backend(pid) FROM connbudget.worker WHERE pid IS NOT NULL}) } ],
	[ 'kill -9 a backend (crash restart)', sub {
		my (undef, $pid) = $node->psql('postgres', q{SELECT pid FROM connbudget.sessions WHERE budget <> 'exempt' ORDER BY random() LIMIT 1});
		kill 'KILL', $pid if $pid;
	} ],
	[ 'restart the server', sub { $node->restart } ],
);
my %done;

# A quiet point: clients paused and gone, the books checked against the server.
sub quiet_point
{
	my ($round) = @_;
	if (open(my $p, '>', $pause)) { close $p; }
	for (1 .. $PostgreSQL::Test::Utils::timeout_default * 50)
	{
		last if $clients == grep { -e "$dir/soak_ready_$_" } 1 .. $clients;
		usleep(20_000);
	}
	ok(wait_for_server($node), "round $round: the server answers");
	ok($node->poll_query_until('postgres', q{
		SELECT (SELECT count(*) FROM connbudget.sessions WHERE budget <> 'exempt') = 0
		   AND (SELECT sum(active) FILTER (WHERE budget <> 'exempt') = 0 AND sum(waiting) = 0 FROM connbudget.status)
		   AND (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = 'app') = 0}),
		"round $round: no budget holds a session or a waiter once every client has gone");
	is($node->safe_psql('postgres', q{
		SELECT coalesce(string_agg(budget || ': queued ' || queued || ' <> waits ' || waits || ' + timed_out ' || timed_out
		       || ' + abandoned ' || abandoned || ' + terminated ' || terminated, '; '), '')
		  FROM connbudget.status WHERE queued <> waits + timed_out + abandoned + terminated}), '',
		"round $round: every login that queued left the queue in exactly one counted way");
	unlink $pause;
	unlink map { "$dir/soak_ready_$_" } 1 .. $clients;
}

my $started = time;
my $round = 0;
while (time - $started < $seconds)
{
	my $until = time + 3 + rand(3);
	while (time < $until)
	{
		my ($name, $fault) = @{ $faults[ int(rand(@faults)) ] };
		next if $name eq 'restart the server' && rand() > 0.2;    # the slowest, more rarely
		$fault->();
		$done{$name}++;
		wait_for_server($node);
		usleep(200_000 + int(rand(400_000)));
	}
	quiet_point(++$round);
}
if (open(my $s, '>', $stop)) { close $s; }
waitpid($_, 0) for @children;
note('faults: ' . join(', ', map { "$_ $done{$_}" } sort keys %done));
my $counts = $node->safe_psql('postgres', q{SELECT string_agg(budget || ' admitted ' || admitted || ' rejected ' || rejected || ' queued ' || queued || ' reclaimed ' || reclaimed, '; ') FROM connbudget.status});
note("after the last restart: $counts");
my $log = slurp_file($node->logfile);
ok($log !~ /TRAP:|PANIC|terminated by signal (?!9)/, 'no assertion failure, PANIC or crash other than the kills');
like($log, qr/password authentication failed for user "secret"/, 'wrong passwords were sent');
is(scalar(() = $log =~ /remaining connection slots are reserved/g), 0,
	"PostgreSQL's own check refused no login pg_connbudget had admitted");

$node->stop;
done_testing();

# Helpers for the TAP tests: a server with pg_connbudget preloaded, raw protocol logins
# that report the SQLSTATE of a refused login (libpq does not expose it), and readers of
# connbudget.status. A helper never dies: what goes wrong (no connection, no answer in
# time, a closed socket) comes back as a failed result, for the test to report.
package ConnBudgetTest;

use strict;
use warnings;

use IO::Select;
use IO::Socket::UNIX;
use Time::HiRes qw(time usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use Exporter 'import';
our @EXPORT = qw(start_node login start_login answered finish_login logout logout_and_wait wait_for_exit query
  start_query finish_query ended_by_server status_of wait_for_active wait_for_waiting poll_until reload_budgets
  wait_for_server);

# A started cluster with the extension created in "postgres" (connbudget.database).
sub start_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1);
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_connbudget'\n"
		  . "max_connections = 40\n"
		  . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_connbudget');
	return $node;
}

# Makes committed budgets live and returns the configuration generation.
sub reload_budgets
{
	my ($node) = @_;
	return $node->safe_psql('postgres', 'SELECT connbudget.reload()');
}

# Logs in over the node's Unix socket with the v3 protocol (trust authentication).
# Returns a hash: {ok => 1, socket => ...} for a session, or the error fields
# {ok => 0, sqlstate, message, detail, hint} for a refused login. Options: user,
# dbname, application_name, replication.
sub login
{
	my ($node, %p) = @_;
	return finish_login(start_login($node, %p));
}

# Sends the startup packet and returns at once, before the server answers (a queued
# login answers only when it gets its slot).
sub start_login
{
	my ($node, %p) = @_;
	my $path = $node->host . '/.s.PGSQL.' . $node->port;
	my $socket = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path)
	  or return { error => "cannot connect to $path: $!" };
	my %params = (
		user => $p{user} // $ENV{USER} // getpwuid($<),
		database => $p{dbname} // 'postgres',
		(defined $p{application_name} ? (application_name => $p{application_name}) : ()),
		(defined $p{replication} ? (replication => $p{replication}) : ()));
	my $body = pack('N', 196608) . join('', map { "$_\0$params{$_}\0" } sort keys %params) . "\0";
	print $socket pack('N', length($body) + 4) . $body;
	return { socket => $socket, select => IO::Select->new($socket) };
}

# True if the server has answered a started login within $seconds.
sub answered
{
	my ($pending, $seconds) = @_;
	return 1 unless $pending->{select};    # it could not even connect
	my $deadline = time + $seconds;
	while ((my $left = $deadline - time) > 0)
	{
		return 1 if $pending->{select}->can_read($left);    # else a signal interrupted the wait
	}
	return 0;
}

# Reads the server's answer to a started login (see login for what it returns).
sub finish_login
{
	my ($pending) = @_;
	return { ok => 0, sqlstate => 'NONE', message => $pending->{error} } if $pending->{error};
	my ($socket, $select) = @{$pending}{qw(socket select)};
	my $pid;
	while (1)
	{
		my ($type, $payload) = _read_message($socket, $select);
		unless (defined $type)
		{
			close $socket;
			return { ok => 0, sqlstate => $payload // 'EOF', message => $payload ? 'no answer in time' : 'connection closed' };
		}
		if ($type eq 'E')
		{
			close $socket;
			return { ok => 0, _error_fields($payload) };
		}
		if ($type eq 'R' && unpack('N', $payload) != 0)
		{
			close $socket;
			return { ok => 0, sqlstate => 'AUTH', message => 'server asked for authentication type ' . unpack('N', $payload) };
		}
		$pid = unpack('N', $payload) if $type eq 'K';    # BackendKeyData: pid, cancel key
		return { ok => 1, socket => $socket, pid => $pid } if $type eq 'Z';
	}
}

# The fields of an ErrorResponse that the tests look at.
sub _error_fields
{
	my ($payload) = @_;
	my %fields;
	for my $field (split /\0/, $payload)
	{
		$fields{ substr($field, 0, 1) } = substr($field, 1) if length $field;
	}
	return (
		sqlstate => $fields{C},
		severity => $fields{V},
		message => $fields{M},
		detail => $fields{D} // '',
		hint => $fields{H} // '');
}

# $length bytes from the server; (undef, 'TIMEOUT') if they do not come in time, undef if
# the connection closed. A signal (a forked client exiting) interrupts the wait, never ends it.
sub _read_exactly
{
	my ($socket, $select, $length) = @_;
	my $data = '';
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	while (length($data) < $length)
	{
		my $left = $deadline - time;
		return (undef, 'TIMEOUT') if $left <= 0;
		next unless $select->can_read($left);
		my $got = sysread($socket, $data, $length - length($data), length($data));
		return undef unless $got;
	}
	return $data;
}

# One message: (type, payload); (undef, why) if none came.
sub _read_message
{
	my ($socket, $select) = @_;
	my ($header, $why) = _read_exactly($socket, $select, 5);
	return (undef, $why) unless defined $header;
	my ($type, $length) = unpack('a1 N', $header);
	my $payload = '';
	if ($length > 4)
	{
		($payload, $why) = _read_exactly($socket, $select, $length - 4);
		return (undef, $why) unless defined $payload;
	}
	return ($type, $payload);
}

# Ends a session from the client side: Terminate message, then close.
sub logout
{
	my ($session) = @_;
	my $socket = $session->{socket} or return;    # a refused login has nothing to end
	local $SIG{PIPE} = 'IGNORE';
	print $socket 'X' . pack('N', 4);
	close $socket;
	delete $session->{socket};
}

# True once the backend process $pid has exited (its PGPROC, its slot in the ledger and
# its place in PostgreSQL's own count are all given back by then).
sub wait_for_exit
{
	my ($pid) = @_;
	return 1 unless $pid;
	for (1 .. $PostgreSQL::Test::Utils::timeout_default * 100)
	{
		return 1 unless kill 0, $pid;
		usleep(10_000);
	}
	return 0;
}

# Ends a session and waits until its backend has exited; true if it did.
sub logout_and_wait
{
	my ($session) = @_;
	logout($session);
	return wait_for_exit($session->{pid});
}

# Runs one query (simple protocol) in a session from login and reads up to ReadyForQuery.
# Returns {ok => 1, rows => [[column, ...], ...]} (values as text, undef for NULL), or
# the error fields as login does, with ok => 0.
sub query
{
	my ($session, $sql) = @_;
	return finish_query(start_query($session, $sql));
}

# Sends a query and returns at once; finish_query reads its result as query does.
sub start_query
{
	my ($session, $sql) = @_;
	if (my $socket = $session->{socket})
	{
		local $SIG{PIPE} = 'IGNORE';
		print $socket 'Q' . pack('N', length($sql) + 5) . $sql . "\0";
	}
	return $session;
}

sub finish_query
{
	my ($session) = @_;
	my $socket = $session->{socket} or return { ok => 0, sqlstate => 'NONE', message => 'no session' };
	my $select = IO::Select->new($socket);
	my (@rows, %error);
	while (1)
	{
		my ($type, $payload) = _read_message($socket, $select);
		return { ok => 0, sqlstate => $payload // 'EOF', message => 'connection closed', %error } unless defined $type;
		%error = _error_fields($payload) if $type eq 'E';
		if ($type eq 'D')
		{
			my ($count, $at, @values) = (unpack('n', $payload), 2);
			for (1 .. $count)
			{
				my $length = unpack('l>', substr($payload, $at, 4));
				$at += 4;
				push @values, $length < 0 ? undef : substr($payload, $at, $length);
				$at += $length if $length > 0;
			}
			push @rows, \@values;
		}
		return %error ? { ok => 0, %error } : { ok => 1, rows => \@rows } if $type eq 'Z';
	}
}

# The error with which the server ended a session from login that was idle (for
# pg_terminate_backend: FATAL 57P01), read up to the end of the connection; the fields as
# login returns them.
sub ended_by_server
{
	my ($session) = @_;
	return { ok => 0, sqlstate => 'NONE', message => 'no session' } unless $session->{socket};
	return finish_login({ socket => $session->{socket}, select => IO::Select->new($session->{socket}) });
}

# connbudget.status as { budget => { column => value } }.
sub status_of
{
	my ($node) = @_;
	my @columns = qw(budget max_connections active waiting peak admitted rejected queued
	  timed_out abandoned);
	my $rows = $node->safe_psql('postgres',
		'SELECT ' . join(', ', @columns) . ' FROM connbudget.status');
	my %status;
	for my $line (split /\n/, $rows)
	{
		my %row;
		@row{@columns} = split /\|/, $line, -1;
		$status{ $row{budget} } = \%row;
	}
	return \%status;
}

# Waits until $sql (one boolean) returns true; false if it does not in time. $through is
# the node (each try is a new psql session) or a session from login (when the test counts
# every backend, the same session each time).
sub poll_until
{
	my ($through, $sql) = @_;
	return $through->poll_query_until('postgres', $sql) if ref($through) ne 'HASH';
	for (1 .. $PostgreSQL::Test::Utils::timeout_default * 10)
	{
		my $result = query($through, $sql);
		return 0 unless $result->{ok};
		return 1 if ($result->{rows}[0][0] // '') eq 't';
		usleep(100_000);
	}
	return 0;
}

# Waits until the server takes logins again (after a crash restart), logging in over the
# raw protocol: psql-based polling can die on a broken pipe while the server is still
# in recovery. True if it did in time.
sub wait_for_server
{
	my ($node) = @_;
	local $SIG{PIPE} = 'IGNORE';
	for (1 .. $PostgreSQL::Test::Utils::timeout_default * 10)
	{
		my $session = login($node);
		if ($session->{ok})
		{
			logout($session);
			return 1;
		}
		usleep(100_000);
	}
	return 0;
}

# Waits until exactly $count logins wait for a budget; returns true if they did.
sub wait_for_waiting
{
	my ($through, $budget, $count) = @_;
	return poll_until($through, "SELECT waiting = $count FROM connbudget.status WHERE budget = '$budget'");
}

# Waits until a budget holds exactly $count sessions; returns true if it did.
sub wait_for_active
{
	my ($through, $budget, $count) = @_;
	return poll_until($through, "SELECT active = $count FROM connbudget.status WHERE budget = '$budget'");
}

1;

# metrics/postgres_exporter.yaml runs as written: every query works for a pg_monitor
# member, returns exactly the columns its metrics declare (a HISTOGRAM brings its
# _bucket, _sum and _count columns), gauges and counters are numbers, and the wait
# histogram's cumulative buckets agree with the count.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

# The file's own layout: "name:" at the left margin, "query: |" with the SQL indented
# four spaces, then "metrics:" with "- column:" entries and their "usage:".
sub read_queries
{
	my ($path) = @_;
	my (%queries, $current, $in_query, $column);
	for my $line (split /\n/, slurp_file($path))
	{
		next if $line =~ /^\s*#/ || $line =~ /^\s*$/;
		if ($line =~ /^(\w+):\s*$/) { $current = $queries{$1} = { sql => '', metrics => [] }; next; }
		if ($line =~ /^  query: \|\s*$/) { $in_query = 1; next; }
		if ($line =~ /^  metrics:\s*$/) { $in_query = 0; next; }
		if ($in_query) { $current->{sql} .= substr($line, 4) . "\n"; next; }
		if ($line =~ /^    - (\w+):\s*$/) { $column = $1; next; }
		if ($line =~ /^        usage: "(\w+)"\s*$/) { push @{ $current->{metrics} }, [ $column, $1 ]; next; }
		die "unexpected line in $path: $line" unless $line =~ /^        description: ".*"\s*$/;
	}
	return \%queries;
}

my $queries = read_queries("$FindBin::RealBin/../../metrics/postgres_exporter.yaml");
is_deeply([ sort keys %$queries ], [qw(connbudget_latency connbudget_status connbudget_wait connbudget_worker)],
	'the file has a query for status, wait histogram, worker and latency');

my $node = start_node('exporter', conf => "authentication_timeout = '60s'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE exporter LOGIN IN ROLE pg_monitor;
	CREATE ROLE worker LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, on_full, queue_timeout)
	VALUES ('w', 'w', 1, 'queue', '30s');
});
reload_budgets($node);
my $holder = login($node, user => 'worker', application_name => 'w');
my $waiter = start_login($node, user => 'worker', application_name => 'w');
ok(wait_for_waiting($node, 'w', 1), 'a login waits, so that the wait histogram has a wait');
logout($holder);
ok(finish_login($waiter)->{ok}, 'and is admitted');

for my $name (sort keys %$queries)
{
	my $query = $queries->{$name};
	my ($rc, $out, $err) = $node->psql('postgres', "COPY ($query->{sql}) TO STDOUT WITH (FORMAT csv, HEADER)",
		extra_params => [ '-U', 'exporter' ]);
	is($rc, 0, "$name runs as a pg_monitor member") or diag $err;
	my ($header, @rows) = split /\n/, $out;
	ok(@rows > 0, "$name returns rows");
	my @expected;
	for my $metric (@{ $query->{metrics} })
	{
		my ($column, $usage) = @$metric;
		like($usage, qr/^(LABEL|GAUGE|COUNTER|HISTOGRAM)$/, "$name.$column has a known usage");
		push @expected, $column;
		push @expected, map { "${column}_$_" } qw(bucket sum count) if $usage eq 'HISTOGRAM';
	}
	is_deeply([ sort split /,/, $header ], [ sort @expected ], "$name returns exactly the declared columns");

	my @columns = split /,/, $header;
	my %usage = map { $_->[0] => $_->[1] } @{ $query->{metrics} };
	for my $row (@rows)
	{
		my %value;
		@value{@columns} = ($row =~ /("[^"]*"|[^,]*)(?:,|$)/g);
		for my $column (grep { ($usage{$_} // '') =~ /GAUGE|COUNTER/ } @columns)
		{
			next if $column eq 'max_connections' && $value{$column} eq '';  # unlimited: NaN
			like($value{$column}, qr/^-?\d+(\.\d+)?(e[-+]?\d+)?$/, "$name.$column is a number ($value{$column})");
		}
		next unless exists $value{seconds};
		my @bounds = $value{seconds} =~ /([\d.]+)/g;
		my @buckets = $value{seconds_bucket} =~ /(\d+)/g;
		is(scalar @buckets, scalar @bounds, "$name: one cumulative count per bucket bound");
		ok((!grep { $buckets[$_] < $buckets[ $_ - 1 ] } 1 .. $#buckets) && ($buckets[-1] // 0) <= $value{seconds_count},
			"$name: buckets never decrease and stay within the count");
	}
}
is($node->safe_psql('postgres',
		"SELECT seconds_count FROM ($queries->{connbudget_wait}{sql}) q WHERE budget = 'w'"), '1',
	'the wait of budget w is counted');

$node->stop;
done_testing();

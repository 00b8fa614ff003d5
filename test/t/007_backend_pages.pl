# What a login maps of shared memory beyond the first window every login reads: the
# page of its budget's slot and the page of its bucket in the match index, each alone
# (core/first_touch.hpp), not the 64 KB around each a read fault would map.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('backend_pages');

# The shared memory a new backend has mapped once it runs its first query (kB).
sub mapped_shared_memory
{
	my ($application_name) = @_;
	local $ENV{PGAPPNAME} = $application_name;
	local $ENV{PGUSER} = 'reader';
	my $out = $node->safe_psql('postgres',
		q{SELECT pg_read_file('/proc/self/smaps')});
	my @lines = split /\n/, $out;
	my ($shared, $size, $largest, $rss) = (0, 0, 0, 0);
	for my $line (@lines)
	{
		if ($line =~ /^[0-9a-f]+-[0-9a-f]+ (\S+) /) { $shared = $1 eq 'rw-s'; next; }
		$size = $1 if $line =~ /^Size:\s+(\d+) kB/;
		if ($shared && $line =~ /^Rss:\s+(\d+) kB/ && $size > $largest) { ($largest, $rss) = ($size, $1); }
	}
	return $rss;
}

# 1,000 pattern budgets: the last one's slot lies about 1 MB past the first window, its
# bucket in the index table further on, each in a window of its own. Logins of a role that
# may read the backend's smaps, and is not exempt as a superuser would be.
$node->safe_psql('postgres', q{
	CREATE ROLE reader LOGIN IN ROLE pg_read_server_files;
	GRANT EXECUTE ON FUNCTION pg_read_file(text) TO reader;
	INSERT INTO connbudget.budgets (name, position, application_name, max_connections)
	SELECT 'pattern_' || i, i, 'app_' || i || '-%', 5 FROM generate_series(1, 1000) i});
reload_budgets($node);
# The smallest of a few logins of each, after one of each (the first logins of the role read
# catalog pages into more buffers, which the next ones map).
my %least;
mapped_shared_memory($_) for 'nobody', 'app_1000-x';
for (1 .. 3)
{
	for my $name ('nobody', 'app_1000-x')
	{
		my $rss = mapped_shared_memory($name);
		$least{$name} = $rss if !defined $least{$name} || $rss < $least{$name};
	}
}
is($node->safe_psql('postgres', q{SELECT string_agg(budget || ' ' || admitted, ', ' ORDER BY budget)
	FROM connbudget.status WHERE budget IN ('default', 'pattern_1000')}),
	'default 4, pattern_1000 4', 'the logins were counted in the default budget and in the last pattern budget');
my $more = $least{'app_1000-x'} - $least{nobody};
note("shared memory mapped: $least{nobody} kB for the default budget's login, $least{'app_1000-x'} kB for the last budget's");
# Two pages alone: 8 kB, 12 if the slot spans two; a read fault would map 2 x 64 kB.
cmp_ok($more, '<=', 32,
	"a login of the last of 1,000 budgets maps $more kB of shared memory more than one of the default budget: its slot's page and its bucket's");

$node->stop;
done_testing();

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

# 4 kB pages: what the counts below are in (a machine with huge pages reserved would map 2 MB
# at a time).
my $node = start_node('backend_pages', conf => "huge_pages = off\n");

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
# The smallest of what $measure gives for a few logins of each application name, after one
# of each (the first logins of the role read catalog pages into more buffers, which the next
# ones map).
sub least_of_logins
{
	my ($measure, @names) = @_;
	my %least;
	$measure->($_) for @names;
	for (1 .. 3)
	{
		for my $name (@names)
		{
			my $value = $measure->($name);
			$least{$name} = $value if !defined $least{$name} || $value < $least{$name};
		}
	}
	return %least;
}
my %least = least_of_logins(\&mapped_shared_memory, 'nobody', 'app_1000-x');
is($node->safe_psql('postgres', q{SELECT string_agg(budget || ' ' || admitted, ', ' ORDER BY budget)
	FROM connbudget.status WHERE budget IN ('default', 'pattern_1000')}),
	'default 4, pattern_1000 4', 'the logins were counted in the default budget and in the last pattern budget');
my $more = $least{'app_1000-x'} - $least{nobody};
note("shared memory mapped: $least{nobody} kB for the default budget's login, $least{'app_1000-x'} kB for the last budget's");
# Two pages alone: 8 kB, 12 if the slot spans two; a read fault would map 2 x 64 kB.
cmp_ok($more, '<=', 32,
	"a login of the last of 1,000 budgets maps $more kB of shared memory more than one of the default budget: its slot's page and its bucket's");

# With 500 connections the session slots fill the first window and push the default and
# exempt budgets' slots past it. A login still maps each page of the module's block it needs
# alone: counted in its page map (present pages of the block, /proc/self/pagemap).
$node->append_conf('postgresql.conf', "max_connections = 500\n");
$node->restart;
reload_budgets($node);
$node->safe_psql('postgres', q{GRANT EXECUTE ON FUNCTION pg_read_binary_file(text, bigint, bigint) TO reader});
my ($block_offset, $block_size) = split /\|/,
  $node->safe_psql('postgres', q{SELECT off, allocated_size FROM pg_shmem_allocations WHERE name = 'pg_connbudget'});
# The main shared memory mapping, the largest, starts at the same address in every backend.
my $segment_start;
my $largest_mapping = 0;
for my $line (split /\n/, $node->safe_psql('postgres', q{SELECT pg_read_file('/proc/self/maps')}))
{
	next unless $line =~ /^([0-9a-f]+)-([0-9a-f]+) rw-s /;
	no warnings 'portable';    # 64-bit addresses
	my ($start, $end) = (hex $1, hex $2);
	($segment_start, $largest_mapping) = ($start, $end - $start) if $end - $start > $largest_mapping;
}
my $first_page = int(($segment_start + $block_offset) / 4096);
my $pages = int(($segment_start + $block_offset + $block_size + 4095) / 4096) - $first_page;

# The pages of the block a new backend has mapped once it runs its first query.
sub mapped_block_pages
{
	my ($application_name) = @_;
	local $ENV{PGAPPNAME} = $application_name;
	local $ENV{PGUSER} = 'reader';
	my $map = $node->safe_psql('postgres',
		"SELECT encode(pg_read_binary_file('/proc/self/pagemap', " . ($first_page * 8) . ", " . ($pages * 8) . "), 'hex')");
	# Bit 63 of each little-endian entry: the page is present.
	return scalar grep { hex(substr($map, 16 * $_ + 14, 2)) >= 0x80 } 0 .. $pages - 1;
}
my %fewest = least_of_logins(\&mapped_block_pages, 'nobody', 'app_1000-x');
note("pages of the module's block mapped with 500 connections: $fewest{nobody} by a default-budget login, "
	  . "$fewest{'app_1000-x'} by one of the last budget");
# The first window (16 pages), then a page or two each: the default budget's slot, the
# login's session slot, its budget's slot, a bucket. A read fault would map 16 for each.
cmp_ok($fewest{nobody}, '<=', 22, "a default-budget login maps $fewest{nobody} pages of the block: the first window and the pages it writes");
cmp_ok($fewest{'app_1000-x'}, '<=', 24, "a login of the last of 1,000 budgets maps $fewest{'app_1000-x'} pages of the block");

$node->stop;
done_testing();

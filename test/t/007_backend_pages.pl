# What a new backend inherits from the postmaster instead of paying a page fault for: the
# module's read-only data. The postmaster makes its own copy of those pages at start
# (inherited_pages.cpp), so every read-only mapping of pg_connbudget.so in a backend is
# made of those anonymous copies, none of pages read in again from the file.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('backend_pages');
my $smaps = $node->safe_psql('postgres', q{SELECT pg_read_file('/proc/self/smaps')});
my @read_only;
my $current;
for my $line (split /\n/, $smaps)
{
	if ($line =~ /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s+(\S*)$/)
	{
		$current = ($1 eq 'r--p' && $2 =~ m{/pg_connbudget\.so$}) ? {} : undef;
		push @read_only, $current if $current;
	}
	elsif ($current && $line =~ /^(Size|Anonymous):\s+(\d+) kB/)
	{
		$current->{$1} = $2;
	}
}
cmp_ok(scalar @read_only, '>=', 2, "the backend maps the module's read-only segments (and its relocated data)");
for my $mapping (@read_only)
{
	is($mapping->{Anonymous}, $mapping->{Size},
		"a read-only mapping of $mapping->{Size} kB is all the postmaster's copy, inherited");
}

$node->stop;
done_testing();

# What a new backend inherits from the postmaster instead of paying a page fault for: the
# module's code and read-only data. The postmaster makes its own copy of those pages at
# start (inherited_pages.cpp), so every mapping of pg_connbudget.so a backend does not
# write is made of those anonymous copies, none of pages read in again from the file.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('backend_pages');
my $smaps = $node->safe_psql('postgres', q{SELECT pg_read_file('/proc/self/smaps')});
my (@read_only, @code);
my $current;
for my $line (split /\n/, $smaps)
{
	if ($line =~ /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s+(\S*)$/)
	{
		my ($protection, $file) = ($1, $2);
		$current = ($protection =~ /^r-[-x]p$/ && $file =~ m{/pg_connbudget\.so$}) ? {} : undef;
		push @{ $protection eq 'r-xp' ? \@code : \@read_only }, $current if $current;
	}
	elsif ($current && $line =~ /^(Size|Anonymous):\s+(\d+) kB/)
	{
		$current->{$1} = $2;
	}
}
cmp_ok(scalar @read_only, '>=', 2, "the backend maps the module's read-only segments (and its relocated data)");
is(scalar @code, 1, "the backend maps the module's code");
for my $mapping (@read_only, @code)
{
	is($mapping->{Anonymous}, $mapping->{Size},
		"a mapping of $mapping->{Size} kB the backend does not write is all the postmaster's copy, inherited");
}

$node->stop;
done_testing();

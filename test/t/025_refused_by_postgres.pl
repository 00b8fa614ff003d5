# A login PostgreSQL is about to refuse takes no place in a budget or its queue: no such
# role, a NOLOGIN role, no CONNECT privilege, no such database, one that does not allow
# connections, the role's or the database's own CONNECTION LIMIT reached. Each meets
# PostgreSQL's own error, at once, and the budget's counts and queue stay as they were, so
# the real users still get their place.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('refused_by_postgres', conf => "authentication_timeout = '60s'\n");
$node->safe_psql('postgres', q{
	CREATE DATABASE appdb;
	CREATE DATABASE closed ALLOW_CONNECTIONS false;
	CREATE DATABASE limited CONNECTION LIMIT 1;
	REVOKE CONNECT ON DATABASE appdb FROM PUBLIC;
	CREATE ROLE app LOGIN;
	GRANT CONNECT ON DATABASE appdb TO app;
	CREATE ROLE outsider LOGIN;
	CREATE ROLE nologin NOLOGIN;
	CREATE ROLE single LOGIN CONNECTION LIMIT 1;
	GRANT CONNECT ON DATABASE appdb TO single;
	INSERT INTO connbudget.budgets (name, database_name, max_connections, on_full, queue_timeout, max_queue) VALUES
	  ('appdb',   'appdb',   1, 'queue', '30s', 2),
	  ('closed',  'closed',  1, 'queue', '30s', 2),
	  ('limited', 'limited', 5, 'queue', '30s', 2);
});
reload_budgets($node);

my $holder = login($node, user => 'app', dbname => 'appdb');
ok($holder->{ok}, 'a user of appdb holds its only slot');
# Logins PostgreSQL refuses, each into appdb's full, queueing budget.
my @doomed = (
	[ { user => 'outsider' }, qr/^permission denied for database "appdb"$/, 'a role without CONNECT' ],
	[ { user => 'nologin' }, qr/^role "nologin" is not permitted to log in$/, 'a NOLOGIN role' ],
	[ { user => 'nobody' }, qr/^role "nobody" does not exist$/, 'a role that does not exist (trust)' ],
);
for my $case (@doomed)
{
	my ($who, $error, $what) = @$case;
	my $refused = login($node, %$who, dbname => 'appdb');
	like($refused->{message}, $error, "$what gets PostgreSQL's own error at once, not a place in the queue");
}
is($node->safe_psql('postgres', q{SELECT active || '/' || waiting || '/' || queued || '/' || rejected FROM connbudget.status WHERE budget = 'appdb'}),
	'1/0/0/0', 'none of them was counted or queued');

# The real users still find the queue free: two wait (max_queue 2), one after the other so
# that the queue's order is known.
my @waiting;
for my $n (1 .. 2)
{
	push @waiting, start_login($node, user => 'app', dbname => 'appdb');
	wait_for_waiting($node, 'appdb', $n) or BAIL_OUT("login $n of app did not queue");
}
pass('two logins of app wait in the queue, which is theirs');

# The role's own connection limit: single may hold one session; its second would wait in
# appdb's queue, but PostgreSQL refuses it.
my $first_single = login($node, user => 'single', dbname => 'postgres');
ok($first_single->{ok}, 'the role with CONNECTION LIMIT 1 holds its one session');
my $second_single = login($node, user => 'single', dbname => 'appdb');
is($second_single->{message}, 'too many connections for role "single"',
	"its second login meets PostgreSQL's role limit, not the budget's queue");

# Databases: one that does not exist, one that allows no connections, one at its limit.
is(login($node, user => 'app', dbname => 'nowhere')->{message}, 'database "nowhere" does not exist',
	'a database that does not exist');
is(login($node, user => 'app', dbname => 'closed')->{message}, 'database "closed" is not currently accepting connections',
	'a database that allows no connections');
my $in_limited = login($node, user => 'app', dbname => 'limited');
ok($in_limited->{ok}, 'a session takes the one connection database "limited" allows');
is(login($node, user => 'app', dbname => 'limited')->{message}, 'too many connections for database "limited"',
	"a second one meets the database's own limit");
is($node->safe_psql('postgres',
		q{SELECT string_agg(budget || '=' || active || '/' || queued || '/' || rejected, ' ' ORDER BY budget) FROM connbudget.status WHERE budget IN ('closed', 'limited')}),
	'closed=0/0/0 limited=1/0/0', 'the budgets of those databases counted only the session that got in');

ConnBudgetTest::logout($holder);
my $next = finish_login($waiting[0]);
ok($next->{ok}, 'as the holder leaves, the first waiter gets its slot');
ConnBudgetTest::logout($next);
my $last = finish_login($waiting[1]);
ok($last->{ok}, 'and then the second');
ConnBudgetTest::logout($_) for $last, $first_single, $in_limited;
$node->stop;
done_testing();

# connbudget.waiting_room keeps some of the server's connections for logins that wait for
# shared capacity; capacity that frees goes to the waiting budget with the highest
# priority first, then by arrival. In the seed's scenario: max_connections 40 (37 for
# ordinary logins), 6 of them a waiting room; the API reserves 8 and may use 2 more; three
# worker budgets queue with priorities 1, 2, 3. Every backend counts: the test watches the
# server through one superuser session held throughout.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('priority', conf => "connbudget.waiting_room = 6\n");
$node->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved, on_full, queue_timeout, priority) VALUES
	  ('api', 'backend', 10, 8, 'reject', NULL,  0),
	  ('w1',  'w1',      20, 0, 'queue',  '50s', 1),
	  ('w2',  'w2',      20, 0, 'queue',  '50s', 2),
	  ('w3',  'w3',      20, 0, 'queue',  '50s', 3);
});
reload_budgets($node);
my %app = map { $_ => [ user => 'app', application_name => $_ ] } qw(backend w1 w2 w3);
my $monitor = login($node);    # a superuser: one of the 37 backends
ok(poll_until($monitor, "SELECT active = 1 FROM connbudget.status WHERE budget = 'exempt'"),
	'the monitoring session is the only other backend');

# The API takes its 8 reserved sessions and 2 shared ones; workers take the other 20 of
# the 37 - 6 - 8 - 1 = 22 shared sessions.
my @api = map { login($node, @{ $app{backend} }) } 1 .. 10;
is(scalar(grep { $_->{ok} } @api), 10, 'the API holds 10 sessions: 8 reserved, 2 shared');
my %active;
for my $spec ([ w1 => 10 ], [ w2 => 6 ], [ w3 => 4 ])
{
	my ($budget, $count) = @$spec;
	$active{$budget} = [ map { login($node, @{ $app{$budget} }) } 1 .. $count ];
}
is(scalar(grep { $_->{ok} } map { @$_ } values %active), 20, 'workers hold the other 20 shared sessions');

# The shared sessions are all in use: workers wait for them, 6 at most (the waiting room).
my %waiting;
my $n = 0;
for my $budget (qw(w1 w2 w3 w1 w2 w3))
{
	push @{ $waiting{$budget} }, start_login($node, @{ $app{$budget} });
	$n++;
	my $expected = grep { $_ eq $budget } (qw(w1 w2 w3 w1 w2 w3))[0 .. $n - 1];
	ok(wait_for_waiting($monitor, $budget, $expected), "login $n waits for shared capacity ($budget)");
}
my $beyond = login($node, @{ $app{w1} });
is($beyond->{message}, 'the server has no connection left for connection budget "w1"',
	'with the waiting room full, a worker of the lowest priority is refused at once');
my $superuser = login($node, application_name => 'w1');
ok($superuser->{ok}, 'a superuser still logs in');
ok(logout_and_wait($superuser), 'and leaves');
my $refused_now = query($monitor, q{SELECT verdict FROM connbudget.explain('w1', 'app', 'postgres')});
is($refused_now->{rows}[0][0], 'refuse: server full', 'explain() agrees');

# API sessions end: the two shared ones go to the highest-priority waiters (w3), the
# next one returns to the API's reservation.
logout(pop @api);
ok(answered($waiting{w3}[0], 5) && finish_login($waiting{w3}[0])->{ok},
	"the API's first freed shared session goes to w3 (priority 3)");
ok(!answered($_, 0.2), 'nobody else moves') for @{ $waiting{w1} }, @{ $waiting{w2} }, $waiting{w3}[1];
logout(pop @api);
ok(finish_login($waiting{w3}[1])->{ok}, 'the second goes to the other w3 waiter');
logout(pop @api);
ok(!answered($_, 0.3), 'an API session within its reservation frees nothing for workers')
  for @{ $waiting{w1} }, @{ $waiting{w2} };

# A w1 session ends: its freed session goes to w2 (priority 2), not to w1's own waiter.
logout(pop @{ $active{w1} });
ok(finish_login($waiting{w2}[0])->{ok}, "a w1 session's end serves the waiting w2 first");
ok(!answered($waiting{w1}[0], 0.2), 'w1 waits until w2 has nobody waiting');
logout(pop @{ $active{w1} });
ok(finish_login($waiting{w2}[1])->{ok}, 'then the second w2 waiter');
logout(pop @{ $active{w1} });
ok(finish_login($waiting{w1}[0])->{ok}, 'then w1, oldest first');
ok(!answered($waiting{w1}[1], 0.2), 'and its second waiter keeps waiting');

my $status = query($monitor,
	q{SELECT string_agg(budget || '=' || queued || '/' || waiting, ' ' ORDER BY budget) FROM connbudget.status WHERE budget LIKE 'w_'});
is($status->{rows}[0][0], 'w1=2/1 w2=2/0 w3=2/0', 'status counts who queued and who still waits');

$node->stop;

# A waiting room larger than the server counts as the whole capacity, says so, and the
# refusals say what it holds back.
my $crowded = start_node('crowded', conf => "connbudget.waiting_room = 2147483647\n");
$crowded->safe_psql('postgres', q{
	CREATE ROLE app LOGIN;
	INSERT INTO connbudget.budgets (name, application_name, max_connections, reserved) VALUES ('api', 'backend', 4, 2);
});
reload_budgets($crowded);
ok($crowded->wait_for_log(qr/connbudget.waiting_room \(2147483647\) is larger than the server's capacity \(37\) and counts as 37/),
	'a waiting room beyond the capacity is logged');
ok(login($crowded, user => 'app', application_name => 'backend')->{ok}, 'a login within its reservation still gets in');
my $shared = login($crowded, user => 'app', application_name => 'other');
is($shared->{message}, 'remaining connections are reserved for other connection budgets',
	'a login that needs a shared session is refused');
like($shared->{detail}, qr/connbudget.waiting_room keeps 37 of the server's connections for logins waiting for shared capacity/,
	'and told that the waiting room holds them');
$crowded->stop;
done_testing();

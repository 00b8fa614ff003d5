# application_name is claimed by the client; the role is verified by the server. A budget
# whose row names both is an entitlement: another role that claims its application_name
# cannot take the reservation. It is matched against the rows after it (the default) or
# refused (connbudget.on_mismatch = refuse); either way it is counted (mismatched in
# status and history) and logged with who claimed what.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/../perl";
use ConnBudgetTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = start_node('entitlement', conf => "connbudget.sample_interval = '100ms'\n");
$node->safe_psql('postgres', q{
	CREATE ROLE api LOGIN;
	CREATE ROLE worker LOGIN;
	CREATE ROLE analysts NOLOGIN;
	CREATE ROLE alice LOGIN IN ROLE analysts;
	INSERT INTO connbudget.budgets (name, position, application_name, role_name, max_connections, reserved) VALUES
	  ('api',     1, 'backend',   'api',       3, 3),
	  ('reports', 2, 'report%',   '+analysts', 2, 0),
	  ('workers', 3, '%_worker',  NULL,        5, 0);
});
reload_budgets($node);

# Three logins of a worker role claim the API's name: none is counted under api.
my @impostors = map { login($node, user => 'worker', application_name => 'backend') } 1 .. 3;
is(scalar(grep { $_->{ok} } @impostors), 3, 'a worker role claiming "backend" still logs in');
is($node->safe_psql('postgres', q{SELECT string_agg(budget || '=' || active, ' ' ORDER BY budget) FROM connbudget.status WHERE budget IN ('api', 'default')}),
	'api=0 default=3', 'but under default, not under api');
my @api = map { login($node, user => 'api', application_name => 'backend') } 1 .. 3;
is(scalar(grep { $_->{ok} } @api), 3, 'the real API still gets its 3 reserved connections');
is($node->safe_psql('postgres', q{SELECT mismatched FROM connbudget.status WHERE budget = 'api'}), '3',
	'status counts the claims as mismatched');
ok($node->wait_for_log(qr/LOG:  connection budget "api" is for role "api": a login of role "worker" claimed its application_name "backend"/),
	'and the server log says who claimed what');
ok(poll_until($node, q{SELECT sum(mismatched) = 3 FROM connbudget.history WHERE budget = 'api'}),
	'so does the history');
is($node->safe_psql('postgres', q{SELECT connbudget.match('backend', 'worker', 'postgres')}), 'default',
	'match() agrees');

# +group: members are entitled, others are not.
my $alice = login($node, user => 'alice', application_name => 'report_q3');
ok($alice->{ok}, 'a member of analysts logs in as a report');
is($node->safe_psql('postgres', "SELECT budget FROM connbudget.sessions WHERE pid = $alice->{pid}"), 'reports',
	'under reports');
my $claim = login($node, user => 'worker', application_name => 'report_q3');
is($node->safe_psql('postgres', "SELECT budget FROM connbudget.sessions WHERE pid = $claim->{pid}"), 'default',
	'a non-member claiming a report name does not');
ConnBudgetTest::logout($_) for @impostors, @api, $alice, $claim;

# connbudget.on_mismatch = refuse: the claim is refused, naming the budget and the role.
$node->append_conf('postgresql.conf', "connbudget.on_mismatch = refuse\n");
$node->reload;
ok(poll_until($node, q{SELECT current_setting('connbudget.on_mismatch') = 'refuse'}), 'on_mismatch is refuse');
my $refused = login($node, user => 'worker', application_name => 'backend');
is($refused->{sqlstate}, '28000', 'a mismatch is refused with invalid_authorization_specification');
is($refused->{message}, 'application_name "backend" belongs to role "api" in connection budget "api"',
	'saying whose name it is');
is($refused->{detail}, 'Role "worker" may not log in under it (connbudget.on_mismatch is refuse).', 'and who tried');
is($node->safe_psql('postgres', q{SELECT verdict FROM connbudget.explain('backend', 'worker', 'postgres')}),
	"refuse: another role's application_name", 'explain() says why');
ok(login($node, user => 'api', application_name => 'backend')->{ok}, 'the API itself is not affected');
ok(login($node, user => 'worker', application_name => 'extraction_worker')->{ok},
	'nor a worker under its own name');

$node->stop;
done_testing();

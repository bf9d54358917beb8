# Token lifetimes through the worker and the emulator: tokens that expire
# during a failover -> commit -> reprotect are renewed ahead of expiry; a
# token revoked mid-workflow gets a 401 from ARM, is dropped, and the
# request is sent again once with a new token (and only once); a refresh
# that fails leaves the still-valid token in use, and the next attempt
# waits at least 30 s; a worker started during a short Entra ID outage (a
# dropped connection, then 503 twice) asks again within seconds, not after
# 30 s and 60 s, and sends the waiting reprotect once Entra answers.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use Time::HiRes qw(usleep);

# slow enough that the workflow outlives several 20 s tokens
my $emu = start_emulator(args => ['--time-scale', '30', '--retry-after', '1']);
emulator_control($emu, 'POST', '/tokens', { lifetime_seconds => 20 });
my $node = asr_node('authtok', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.sync_interval = 3600s\n"
	  # every message, but not the test's own CREATE USER MAPPING statements
	  . "log_min_messages = debug5\nlog_statement = none\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");

sub act
{
	my ($sql, $what) = @_;
	my $job = $node->safe_psql('postgres', "SELECT $sql");
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT asr_wait($job, '120 s')",
		timeout => 180);
	is($out, 'succeeded', "$what succeeded") or diag("job $job: $err\n" .
		$node->safe_psql('postgres', "SELECT state, error_code, error_message, last_error FROM asr_jobs WHERE job_id = $job"));
	return $job;
}

sub last_seq { return emulator_last_seq($emu); }

# --- tokens expiring during the workflow ---------------------------------
my $seq = last_seq();
my $started = time();
act("asr_failover('app-vm-01', 'latest_processed')", 'failover (20 s tokens)');
act("asr_commit('app-vm-01')", 'commit (20 s tokens)');
act("asr_reprotect('app-vm-01')", 'reprotect (20 s tokens)');
my $took = time() - $started;
cmp_ok($took, '>', 20, 'the workflow outlived the token it started with');
my $logins = emulator_requests($emu, listener => 'login', since => $seq);
my $arm = emulator_requests($emu, listener => 'arm', since => $seq);
cmp_ok(scalar(@$logins), '>=', int($took / 20),
	"a new token was fetched at least every 20 s of the ${took} s workflow (" . scalar(@$logins) . ')');
is(scalar(grep { $_->{status} != 200 } @$logins), 0, 'every token request was granted');
is(scalar(grep { $_->{status} == 401 } @$arm), 0,
	'ARM never saw an expired token: each was renewed ahead of its expiry');

# --- a token revoked mid-workflow: 401, dropped, sent again once ----------
emulator_control($emu, 'POST', '/tokens', { lifetime_seconds => 3600 });
ok(wait_for_query($node,
		"SELECT asr_sync('dr', '30 s') >= 0 AND protection_state = 'Protected' FROM asr_items WHERE name = 'app-vm-01'",
		't', 120), 'app-vm-01 is protected in reverse');
act("asr_failover('app-vm-01', 'latest')", 'failback');
$seq = last_seq();
emulator_control($emu, 'POST', '/tokens/revoke', {});
act("asr_commit('app-vm-01')", 'commit after the token was revoked');
$arm = emulator_requests($emu, listener => 'arm', since => $seq);
my @denied = grep { $_->{status} == 401 } @$arm;
is(scalar(@denied), 1, 'ARM refused the revoked token once');
my $crid = $denied[0]{client_request_id} // '';
my @again = grep { ($_->{client_request_id} // '') eq $crid && $_->{seq} > $denied[0]{seq} } @$arm;
is(scalar(@again), 1, 'the refused request was sent again, once');
is($again[0]{status}, 200, '... and succeeded with the new token');
is(scalar(grep { $_->{seq} > $denied[0]{seq} && $_->{seq} < $again[0]{seq} && $_->{status} == 200 }
		  @{ emulator_requests($emu, listener => 'login', since => $seq) }),
	1, 'a new token was fetched in between');

# an ARM that keeps answering 401: one resend, no more
$seq = last_seq();
emulator_control($emu, 'POST', '/faults', {
		action => 'status', status => 401, count => 2,
		match => { listener => 'arm', method => 'GET', path => 'replicationProtectedItems/[^/]+$' } });
my $job = $node->safe_psql('postgres', "SELECT asr_reprotect('app-vm-01')");
my $deadline = time() + 60;
my @got;
while (time() < $deadline)
{
	@got = grep { $_->{status} == 401 } @{ emulator_requests($emu, listener => 'arm', since => $seq) };
	last if @got >= 2;
	usleep(200_000);
}
is(scalar(@got), 2, 'two 401s in a row');
is($got[0]{client_request_id}, $got[1]{client_request_id}, '... for the same request and its one resend');
sleep 2;
is(scalar(grep { ($_->{client_request_id} // '') eq ($got[0]{client_request_id} // 'x') }
		  @{ emulator_requests($emu, listener => 'arm', since => $seq) }),
	2, 'that request was not sent a third time');
emulator_control($emu, 'DELETE', '/faults');
$node->psql('postgres', "SELECT asr_wait($job, '120 s')", timeout => 180);

# --- a failed refresh: the valid token stays in use, the next try waits --
# 80 s tokens are refreshed after 40 s; a failure then leaves 40 s of
# validity, more than the 30 s back-off
emulator_control($emu, 'POST', '/tokens', { lifetime_seconds => 80 });
$node->restart;			# a fresh worker: no token yet
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");
emulator_control($emu, 'POST', '/faults', {
		action => 'status', status => 503, count => undef, match => { listener => 'login' } });
$seq = last_seq();
my $failed;
$deadline = time() + 120;
while (time() < $deadline && !$failed)
{
	$node->psql('postgres', "SELECT asr_sync('dr', '60 s')");
	($failed) = grep { $_->{status} == 503 } @{ emulator_requests($emu, listener => 'login', since => $seq) };
	sleep 1 unless $failed;
}
ok($failed, 'the refresh ahead of expiry was refused (503)');
my ($ret, $out, $err) = $node->psql('postgres', "SELECT asr_sync('dr', '60 s')");
is($ret, 0, 'a sync after the failed refresh works') or diag($err);
my @after = grep { $_->{seq} > $failed->{seq} } @{ emulator_requests($emu, listener => 'arm', since => $seq) };
ok(@after && !grep({ $_->{status} != 200 } @after), 'ARM accepted the still-valid token after the failed refresh');
like($node->safe_psql('postgres', 'SELECT last_error FROM asr_worker_status'),
	qr/AADSTS50196/, "asr_worker_status has Entra's refusal");
emulator_control($emu, 'DELETE', '/faults');
my $next;
$deadline = time() + 90;
while (time() < $deadline && !$next)
{
	$node->psql('postgres', "SELECT asr_sync('dr', '60 s')");
	($next) = grep { $_->{seq} > $failed->{seq} } @{ emulator_requests($emu, listener => 'login', since => $seq) };
	sleep 1 unless $next;
}
ok($next, 'the refresh was tried again');
cmp_ok($next->{time} - $failed->{time}, '>=', 30, 'the next try waited at least 30 s');
is($next->{status}, 200, '... and got a new token');
is(scalar(grep { $_->{status} == 401 } @{ emulator_requests($emu, listener => 'arm', since => $seq) }),
	0, 'no ARM request was refused meanwhile');

# --- a login outage while a reprotect waits: short retries ---------------
# Transient failures (src/auth.h): the next token request may follow after
# 1 s, 2 s, 4 s...; the waiting job, which asks again after 6.4 s +- 20 %
# (dispatch.c), paces them.  After a refusal it would be 30 s, then 60 s:
# the spacing in the emulator's log (under 15 s) tells the two schedules
# apart, without timing the test.
# The job: the reprotect that the two 401s above made fail.
emulator_control($emu, 'POST', '/tokens', { lifetime_seconds => 3600 });
$node->stop('fast');
emulator_control($emu, 'POST', '/faults', [
		{ action => 'drop', count => 1, match => { listener => 'login' } },
		{ action => 'status', status => 503, skip => 1, count => 2, match => { listener => 'login' } } ]);
$seq = last_seq();
$node->start;			# a fresh worker: no token yet
$job = $node->safe_psql('postgres', "SELECT asr_reprotect('app-vm-01')");
($ret, $out, $err) = $node->psql('postgres', "SELECT asr_wait($job, '120 s')", timeout => 180);
is($out, 'succeeded', 'the reprotect queued during the login outage succeeded')
  or diag($node->safe_psql('postgres', "SELECT state, error_code, last_error FROM asr_jobs WHERE job_id = $job"));
my @logins = @{ emulator_requests($emu, listener => 'login', since => $seq) };
is(join(' ', map { $_->{status} } @logins[0 .. 3]), 'dropped 503 503 200',
	'the token requests: a dropped connection, 503 twice, then a token');
my @gaps = map { sprintf('%.1f', $logins[$_]{time} - $logins[$_ - 1]{time}) } 1 .. 3;
ok(!grep({ $_ >= 15 } @gaps), 'each token request came less than 15 s after the one before')
  or diag("gaps: @gaps s");
my @posts = @{ emulator_requests($emu, listener => 'arm', method => 'POST', path => '/switchprotection$',
		since => $seq) };
is(scalar(@posts), 1, 'the reprotect was POSTed once');
ok(@posts && $posts[0]{seq} > $logins[3]{seq}, '... after the token was granted');

$node->stop('fast');

# nothing secret in the server log, at debug5
my $log = slurp_file($node->logfile);
like($log, qr/DEBUG:/, 'the server logged at debug levels');
for my $secret ($emu->{client_secret}, $emu->{certificate_password})
{
	ok(index($log, $secret) < 0, 'no secret or password in the server log');
}
unlike($log, qr/eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}/, 'no token or client assertion in the server log');
unlike($log, qr/PRIVATE KEY/, 'no private key in the server log');
done_testing();

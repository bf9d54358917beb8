# Entra ID and IMDS refusals reach the affected job (asr_jobs.last_error)
# and asr_worker_status in words a DBA can act on -- the OAuth error, the
# AADSTS code, Entra's description, what to do -- never with the secret;
# the job waits, sends nothing to ARM, and goes on once the DBA fixes the
# user mapping.  Cases: a wrong client secret, a certificate whose
# thumbprint is not (or no longer) registered on the application, a wrong
# certificate password, and IMDS answering 400, 404, 429 and 500.  A
# refusal is not an outage: the emulator's log shows the wrong secret
# offered again no sooner than 30 s later (src/auth.h, the permanent
# schedule), however often the waiting job asks.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use MIME::Base64 qw(encode_base64url);

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $node = asr_node('autherr', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.sync_interval = 3600s\n"
	  # every message, but not the test's own CREATE USER MAPPING statements
	  . "log_min_messages = debug5\nlog_statement = none\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");

sub remap
{
	my ($options) = @_;
	$node->safe_psql('postgres', qq{
		DROP USER MAPPING FOR PUBLIC SERVER azure;
		CREATE USER MAPPING FOR PUBLIC SERVER azure OPTIONS ($options);
		SELECT pg_reload_conf();
	});
}

sub job_field
{
	my ($job, $expr) = @_;
	return $node->safe_psql('postgres', "SELECT $expr FROM asr_jobs WHERE job_id = $job");
}

# wait until the job's last_error matches $re; returns it
sub wait_job_error
{
	my ($job, $re, $what) = @_;
	my $deadline = time() + 120;
	my $err = '';
	while (time() < $deadline)
	{
		$err = job_field($job, "coalesce(last_error, '')");
		last if $err =~ $re;
		sleep 1;
	}
	like($err, $re, "$what: the job says why") or diag(job_field($job, 'state'));
	return $err;
}

sub wait_done
{
	my ($job, $what) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT asr_wait($job, '120 s')", timeout => 180);
	is($out, 'succeeded', "$what succeeded once the mapping was fixed")
	  or diag(job_field($job, "state || ' ' || coalesce(error_message, '') || ' ' || coalesce(last_error, '')"));
}

sub worker_error
{
	return $node->safe_psql('postgres', "SELECT coalesce(last_error, '') FROM asr_worker_status");
}

sub last_seq { return emulator_last_seq($emu); }

sub posts
{
	my ($action) = @_;
	return scalar @{ emulator_requests($emu, method => 'POST', path => "/$action\$") };
}

# --- a wrong client secret ---------------------------------------------
my $wrong = 'Wr0ng~secret.value_' . int(rand(1e9));
my $seq = last_seq();
remap("auth 'client_secret', client_id '$emu->{client_id}', client_secret '$wrong'");
my $job = $node->safe_psql('postgres', "SELECT asr_failover('app-vm-01', 'latest_processed')");
my $err = wait_job_error($job, qr/AADSTS7000215/, 'wrong secret');
like($err, qr/Microsoft Entra ID .*refused the token request for server "azure" \(HTTP 401 invalid_client\)/,
	'wrong secret: the job names Entra, the server, the HTTP status and the OAuth error');
like($err, qr/Invalid client secret provided/, "wrong secret: the job has Entra's description");
like($err, qr/Check client_secret/, 'wrong secret: the job says what to fix');
ok(index($err, $wrong) < 0 && index($err, $emu->{client_secret}) < 0, 'wrong secret: no secret in the job');
like(worker_error(), qr/AADSTS7000215/, 'wrong secret: asr_worker_status has the AADSTS code');
ok(index(worker_error(), $wrong) < 0, 'wrong secret: no secret in asr_worker_status');
isnt(job_field($job, 'state'), 'failed', 'wrong secret: the job waits instead of failing');
is(posts('unplannedFailover'), 0, 'wrong secret: nothing was sent to ARM');
my ($ret, $out, $serr) = $node->psql('postgres', "SELECT asr_sync('dr', '60 s')");
my $sync_error = $node->safe_psql('postgres', "SELECT coalesce(sync_error, '') FROM asr_vaults WHERE name = 'dr'");
like("$serr $sync_error", qr/AADSTS7000215/, 'wrong secret: a sync says why too');
ok(index("$serr $sync_error", $wrong) < 0, 'wrong secret: ... without the secret');

# the job and the sync keep asking for a token every few seconds; Entra is
# asked again only after the permanent back-off (30 s, then 60 s...)
my @logins;
my $deadline = time() + 150;
while (time() < $deadline)
{
	@logins = @{ emulator_requests($emu, listener => 'login', since => $seq) };
	last if @logins >= 2;
	sleep 1;
}
is(scalar(grep { $_->{status} eq '401' } @logins[0, 1]), 2,
	'wrong secret: Entra refused the secret twice') or diag(explain(\@logins));
cmp_ok($logins[1]{time} - $logins[0]{time}, '>=', 30,
	'wrong secret: the second token request came no sooner than 30 s after the first');

$node->safe_psql('postgres',
	"ALTER USER MAPPING FOR PUBLIC SERVER azure OPTIONS (SET client_secret '$emu->{client_secret}'); SELECT pg_reload_conf()");
wait_done($job, 'wrong secret: the failover');
is(posts('unplannedFailover'), 1, 'wrong secret: the failover was POSTed exactly once');

# --- a certificate whose thumbprint is not registered ----------------------
my $dir = PostgreSQL::Test::Utils::tempdir('cert');
system("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=revoked -days 2 "
	  . "-keyout $dir/key.pem -out $dir/crt.pem 2>/dev/null") == 0 or die 'openssl req';
system("cat $dir/key.pem $dir/crt.pem > $dir/revoked.pem && chmod 600 $dir/revoked.pem") == 0 or die;
my $fp = `openssl x509 -in $dir/crt.pem -noout -fingerprint -sha1`;
$fp =~ s/.*=//s;
$fp =~ s/[:\s]//g;
my $x5t = encode_base64url(pack('H*', $fp));
remap("auth 'certificate', client_id '$emu->{cert_client_id}', certificate_file '$dir/revoked.pem'");
$job = $node->safe_psql('postgres', "SELECT asr_commit('app-vm-01')");
$err = wait_job_error($job, qr/AADSTS700027/, 'unregistered thumbprint');
like($err, qr/HTTP 401 invalid_client/, 'unregistered thumbprint: HTTP status and OAuth error');
like($err, qr/not registered/, "unregistered thumbprint: Entra's description");
like($err, qr/\Q$x5t\E/, 'unregistered thumbprint: the thumbprint Entra saw');
like($err, qr/Upload this certificate/, 'unregistered thumbprint: what to do');
like(worker_error(), qr/AADSTS700027/, 'unregistered thumbprint: asr_worker_status has the code');
unlike($err . worker_error(), qr/PRIVATE KEY|eyJ[A-Za-z0-9_-]{8,}\./, 'unregistered thumbprint: no key or assertion');
is(posts('failoverCommit'), 0, 'unregistered thumbprint: nothing was sent to ARM');

# --- the registered certificate, with a wrong password -------------------
my $wrong_password = 'Wr0ng-pfx-password-' . int(rand(1e9));
remap("auth 'certificate', client_id '$emu->{cert_client_id}', certificate_file '$emu->{certificate_pfx}', "
	  . "certificate_password '$wrong_password'");
$err = wait_job_error($job, qr/could not use the certificate of server "azure"/, 'wrong certificate password');
like($err, qr/Check certificate_password/, 'wrong certificate password: what to fix');
ok(index($err, $wrong_password) < 0 && index($err, $emu->{certificate_password}) < 0,
	'wrong certificate password: no password in the job');
like(worker_error(), qr/could not use the certificate/, 'wrong certificate password: asr_worker_status says it too');
ok(index(worker_error(), $wrong_password) < 0, 'wrong certificate password: no password in asr_worker_status');
is(posts('failoverCommit'), 0, 'wrong certificate password: nothing was sent to ARM');

remap("auth 'certificate', client_id '$emu->{cert_client_id}', certificate_file '$emu->{certificate_file}'");
wait_done($job, 'unregistered thumbprint and wrong password: the commit');

# --- IMDS refusals ---------------------------------------------------------
# IMDS refuses from the start (the worker must never get a token here)
emulator_control($emu, 'POST', '/faults', {
		action => 'status', status => 500, count => undef, match => { listener => 'imds' } });
remap("auth 'managed_identity', client_id '$emu->{managed_identity_client_id}'");
$job = $node->safe_psql('postgres', "SELECT asr_reprotect('app-vm-01')");
my %imds = (
	400 => [{ error => 'invalid_request', error_description => 'Identity not found' },
		qr/Identity not found.*Assign a managed identity/],
	404 => [undef, qr/being updated; asr tries again/],
	429 => [undef, qr/throttling requests; asr tries again/],
	500 => [undef, qr/failed; asr tries again/]);
for my $status (sort keys %imds)
{
	# a fresh worker has no token and no back-off
	$node->stop('fast');
	emulator_control($emu, 'DELETE', '/faults');
	emulator_control($emu, 'POST', '/faults', {
			action => 'status', status => $status + 0, count => undef,
			match => { listener => 'imds' },
			defined $imds{$status}[0] ? (body => $imds{$status}[0]) : () });
	$node->start;
	$err = wait_job_error($job, qr/HTTP $status\b/, "IMDS $status");
	like($err, qr/the managed identity endpoint \(127\.0\.0\.1:\d+\) refused the token request for server "azure"/,
		"IMDS $status: the job names IMDS and the server");
	like($err, $imds{$status}[1], "IMDS $status: the job says what it means");
	like(worker_error(), qr/HTTP $status\b/, "IMDS $status: asr_worker_status says it too");
	isnt(job_field($job, 'state'), 'failed', "IMDS $status: the job waits");
}
is(posts('switchprotection'), 0, 'IMDS refusals: nothing was sent to ARM');
emulator_control($emu, 'DELETE', '/faults');
$node->restart;
wait_done($job, 'IMDS refusals: the reprotect');

$node->stop('fast');

# nothing secret in the server log, at debug5
my $log = slurp_file($node->logfile);
like($log, qr/DEBUG:/, 'the server logged at debug levels');
for my $secret ($wrong, $wrong_password, $emu->{client_secret}, $emu->{certificate_password})
{
	ok(index($log, $secret) < 0, 'no secret or password in the server log');
}
unlike($log, qr/eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}/, 'no token or client assertion in the server log');
unlike($log, qr/PRIVATE KEY/, 'no private key in the server log');
done_testing();

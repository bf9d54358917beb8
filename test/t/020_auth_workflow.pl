# Failover -> commit -> reprotect through the worker and the emulator with
# each way of signing in: a client secret, a certificate (PEM, RS256 with
# x5t), a password-protected PKCS#12 certificate (PS256 with x5t#S256) and
# a managed identity through IMDS.  The emulator checks the client
# assertions' signatures against the registered certificate.  The server
# runs at log_min_messages = debug5 throughout; at the end neither the log,
# nor any table, nor pg_settings holds the secret, the certificate
# password or any token or assertion, and a non-superuser cannot read the
# mapping's options.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use MIME::Base64 qw(encode_base64url);

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $node = asr_node('authflow', conf => "asr.ca_file = '$emu->{ca_file}'\n"
	  . "asr.sync_interval = 3600s\nlog_min_messages = debug5\n"
	  # the test's own CREATE USER MAPPING statements name the secret
	  . "log_statement = none\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");

# run one action to its end
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

# failover -> commit -> reprotect of one VM
sub workflow
{
	my ($vm, $mode) = @_;
	act("asr_failover('$vm', 'latest_processed')", "$mode: failover of $vm");
	act("asr_commit('$vm')", "$mode: commit of $vm");
	act("asr_reprotect('$vm')", "$mode: reprotect of $vm");
}

# replace the user mapping; the worker rereads it after a reload
sub remap
{
	my ($options) = @_;
	$node->safe_psql('postgres', qq{
		DROP USER MAPPING FOR PUBLIC SERVER azure;
		CREATE USER MAPPING FOR PUBLIC SERVER azure OPTIONS ($options);
		SELECT pg_reload_conf();
	});
}

sub last_seq
{
	my $all = emulator_requests($emu);
	return @$all ? $all->[-1]{seq} : 0;
}

# --- client secret -------------------------------------------------------
my $seq = 0;
workflow('app-vm-01', 'client secret');
my $logins = emulator_requests($emu, listener => 'login', since => $seq);
ok(@$logins >= 1, 'client secret: tokens came from the login endpoint');
is(scalar(grep {
			$_->{status} == 200 && $_->{path} eq "/$emu->{tenant_id}/oauth2/v2.0/token"
			  && ($_->{body}{client_id} // '') eq $emu->{client_id}
			  && ($_->{body}{client_secret} // '') eq '***'
			  && !exists $_->{body}{client_assertion}
		} @$logins), scalar(@$logins),
	'client secret: every token request sent the secret for the right client and was granted');
is(scalar(grep { $_->{listener} eq 'arm' && $_->{status} == 401 }
		  @{ emulator_requests($emu, since => $seq) }), 0,
	'client secret: ARM accepted every token');

# --- certificate, PEM, RS256 + x5t ------------------------------------
$seq = last_seq();
remap("auth 'certificate', client_id '$emu->{cert_client_id}', certificate_file '$emu->{certificate_file}'");
workflow('db-vm-01', 'certificate (PEM)');
$logins = emulator_requests($emu, listener => 'login', since => $seq);
ok(@$logins >= 1, 'certificate (PEM): tokens came from the login endpoint');
is(scalar(grep {
			$_->{status} == 200
			  && ($_->{body}{client_id} // '') eq $emu->{cert_client_id}
			  && ($_->{body}{client_assertion} // '') eq '***'
			  && ($_->{body}{client_assertion_type} // '') eq 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
			  && !exists $_->{body}{client_secret}
		} @$logins), scalar(@$logins),
	'certificate (PEM): every request carried a client assertion the emulator verified');

# --- certificate, PKCS#12 with a password, PS256 + x5t#S256 -------------
$seq = last_seq();
remap("auth 'certificate', client_id '$emu->{cert_client_id}', certificate_file '$emu->{certificate_pfx}', "
	  . "certificate_password '$emu->{certificate_password}', jwt_algorithm 'PS256'");
workflow('web-vm-01', 'certificate (PFX, PS256)');
$logins = emulator_requests($emu, listener => 'login', since => $seq);
ok(@$logins >= 1, 'certificate (PFX): tokens came from the login endpoint');
is(scalar(grep { $_->{status} == 200 && ($_->{body}{client_assertion} // '') eq '***' } @$logins),
	scalar(@$logins), 'certificate (PFX): every assertion was verified and granted');

# --- managed identity ----------------------------------------------------
$seq = last_seq();
remap("auth 'managed_identity', client_id '$emu->{managed_identity_client_id}'");
# app-vm-01 is protected in reverse once initial replication ends
ok(wait_for_query($node,
		"SELECT asr_sync('dr', '30 s') >= 0 AND protection_state = 'Protected' FROM asr_items WHERE name = 'app-vm-01'",
		't', 120), 'app-vm-01 is protected in reverse');
workflow('app-vm-01', 'managed identity');
my $imds = emulator_requests($emu, listener => 'imds', since => $seq);
ok(@$imds >= 1, 'managed identity: tokens came from IMDS');
is(scalar(grep {
			$_->{status} == 200 && $_->{path} eq '/metadata/identity/oauth2/token'
			  && ($_->{query}{client_id} // '') eq $emu->{managed_identity_client_id}
			  && ($_->{query}{resource} // '') eq 'https://management.azure.com/'
			  && grep({ lc($_) eq 'metadata' } @{ $_->{headers} })
		} @$imds), scalar(@$imds),
	'managed identity: every IMDS request named the identity and ARM, with Metadata: true');
is(scalar(@{ emulator_requests($emu, listener => 'login', since => $seq) }), 0,
	'managed identity: nothing was sent to the login endpoint');
like($node->safe_psql('postgres', "SELECT arm_id FROM asr_items WHERE name = 'app-vm-01'"),
	qr/default-eastus\//i, 'app-vm-01 is back in its original region');

my $issued = emulator_control($emu, 'POST', '/tokens', {})->{issued};
cmp_ok($issued, '>=', 4, "the emulator issued $issued tokens");

# --- nothing secret anywhere -------------------------------------------
$node->safe_psql('postgres', 'CHECKPOINT');
my $log = slurp_file($node->logfile);
like($log, qr/DEBUG:  proc_exit/, 'the server logged at debug levels');
like($log, qr/asr/, 'the log has the worker\'s messages');
my $tables = `pg_dump --data-only -h '${\$node->host}' -p ${\$node->port} postgres`;
like($tables, qr/app-vm-01/, 'the dump holds the tables');
$tables .= $node->safe_psql('postgres',
	"SELECT string_agg(name || '=' || setting, ' ') FROM pg_settings");
$tables .= $node->safe_psql('postgres', 'SELECT s::text FROM asr_worker_status s');
$tables .= $node->safe_psql('postgres', 'SELECT string_agg(v::text, \' \') FROM asr_vaults v');

# every token of the emulator starts with the same JWT header; every
# assertion is a JWT too ("eyJ" is base64 of '{"')
my $token_header = encode_base64url('{"typ": "JWT", "alg": "HS256", "kid": "asr-emulator"}');
my %secret = (
	'client secret' => $emu->{client_secret},
	'certificate password' => $emu->{certificate_password},
	'token header' => $token_header);
for my $where (['server log', $log], ['tables and settings', $tables])
{
	for my $what (sort keys %secret)
	{
		ok(index($where->[1], $secret{$what}) < 0, "no $what in the $where->[0]");
	}
	ok($where->[1] !~ /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}/,
		"no token or client assertion in the $where->[0]");
	ok($where->[1] !~ /BEGIN [A-Z ]*PRIVATE KEY/, "no private key in the $where->[0]");
}

# --- a non-superuser cannot read the mapping's options -----------------
$node->safe_psql('postgres', q{
	CREATE ROLE dba LOGIN;
	GRANT SELECT ON ALL TABLES IN SCHEMA public TO dba;
	GRANT USAGE ON FOREIGN SERVER azure TO dba;
});
remap("auth 'client_secret', client_id '$emu->{client_id}', client_secret '$emu->{client_secret}'");
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT umoptions FROM pg_user_mapping", extra_params => ['-U', 'dba']);
isnt($ret, 0, 'pg_user_mapping is not readable by a non-superuser');
like($err, qr/permission denied/, '... permission denied');
$out = $node->safe_psql('postgres',
	"SELECT coalesce(umoptions::text, 'hidden') FROM pg_user_mappings WHERE srvname = 'azure'",
	extra_params => ['-U', 'dba']);
is($out, 'hidden', 'pg_user_mappings hides the options of the PUBLIC mapping from a non-owner');
($ret, $out, $err) = $node->psql('postgres',
	"ALTER USER MAPPING FOR PUBLIC SERVER azure OPTIONS (SET client_secret 'x')",
	extra_params => ['-U', 'dba']);
isnt($ret, 0, 'a non-superuser cannot alter the mapping');
$out = $node->safe_psql('postgres',
	"SELECT concat_ws(' ', (SELECT string_agg(v::text, ' ') FROM asr_vaults v), (SELECT string_agg(j::text, ' ') FROM asr_jobs j))",
	extra_params => ['-U', 'dba']);
like($out, qr/app-vm-01|azure/, 'the non-superuser reads the vaults and jobs');
ok(index($out, $emu->{client_secret}) < 0, '... which hold no secret');

$node->stop('fast');
done_testing();

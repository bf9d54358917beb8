# Each cloud's token scope, with the server's endpoint overrides pointing
# at the emulator: the worker sends the token request (client secret) and
# the IMDS request (managed identity) to the overridden endpoints, asking
# for the cloud's ARM scope or resource.  The emulator, like Entra ID in
# AzureCloud, knows only AzureCloud's resource and refuses the others; the
# refusal reaches the job and the vault with advice.  With arm_scope set,
# a sovereign-cloud server works end to end against the overrides.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use AsrTest;

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $node = asr_node('authcloud', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu, server_options => "cloud 'AzureCloud'");
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");
my ($arm_host) = $emu->{arm_endpoint} =~ m{^https://([^/]+)};

my %cloud = (
	AzureUSGovernment => ['https://management.core.usgovcloudapi.net/.default',
		'https://management.core.usgovcloudapi.net/'],
	AzureChinaCloud => ['https://management.chinacloudapi.cn/.default',
		'https://management.chinacloudapi.cn/'],
	AzureCloud => ['https://management.azure.com/.default', 'https://management.azure.com/']);
my %mapping = (
	secret => "auth 'client_secret', client_id '$emu->{client_id}', client_secret '$emu->{client_secret}'",
	identity => "auth 'managed_identity', client_id '$emu->{managed_identity_client_id}'");

sub last_seq
{
	my $all = emulator_requests($emu);
	return @$all ? $all->[-1]{seq} : 0;
}

sub setup
{
	my ($server_sql, $auth) = @_;
	$node->safe_psql('postgres', qq{
		ALTER SERVER azure OPTIONS ($server_sql);
		DROP USER MAPPING FOR PUBLIC SERVER azure;
		CREATE USER MAPPING FOR PUBLIC SERVER azure OPTIONS ($mapping{$auth});
		SELECT pg_reload_conf();
	});
}

# a sync; returns its error text ('' when it worked) and the requests it made
sub sync
{
	# the emulator logs a request once it has answered it: let the answers
	# of the previous sync reach its log before taking the mark
	usleep(500_000);
	my $seq = last_seq();
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT asr_sync('dr', '60 s')");
	my $sync_error = $node->safe_psql('postgres', "SELECT coalesce(sync_error, '') FROM asr_vaults WHERE name = 'dr'");
	return ($ret == 0 ? '' : "$err $sync_error", emulator_requests($emu, since => $seq));
}

for my $c ('AzureUSGovernment', 'AzureChinaCloud', 'AzureCloud')
{
	my ($scope, $resource) = @{ $cloud{$c} };

	# client secret: the token request goes to the login override
	setup("SET cloud '$c'", 'secret');
	my ($err, $reqs) = sync();
	my @login = grep { $_->{listener} eq 'login' } @$reqs;
	ok(@login >= 1, "$c, secret: a token request reached the login_endpoint override");
	is(scalar(grep {
				$_->{host} eq $arm_host && $_->{method} eq 'POST'
				  && $_->{path} eq "/$emu->{tenant_id}/oauth2/v2.0/token"
				  && ($_->{body}{scope} // '') eq $scope
				  && ($_->{body}{client_secret} // '') eq '***'
			} @login), scalar(@login), "$c, secret: each asked for scope $scope");
	if ($c eq 'AzureCloud')
	{
		is($err, '', "$c, secret: the sync worked");
		ok((grep { $_->{listener} eq 'arm' && $_->{status} == 200 && $_->{host} eq $arm_host } @$reqs),
			"$c, secret: ARM calls went to the arm_endpoint override");
	}
	else
	{
		like($err, qr/AADSTS500011.*check cloud and arm_scope/, "$c, secret: the refusal says what to check");
		ok(!(grep { $_->{listener} eq 'arm' } @$reqs), "$c, secret: no ARM call without a token");
	}

	# managed identity: the IMDS request goes to the imds_endpoint override
	setup("SET cloud '$c'", 'identity');
	($err, $reqs) = sync();
	my @imds = grep { $_->{listener} eq 'imds' } @$reqs;
	ok(@imds >= 1, "$c, identity: a token request reached the imds_endpoint override");
	is(scalar(grep { ($_->{query}{resource} // '') eq $resource } @imds), scalar(@imds),
		"$c, identity: each asked for resource $resource");
	if ($c eq 'AzureCloud')
	{
		is($err, '', "$c, identity: the sync worked");
	}
	else
	{
		like($err, qr/managed identity endpoint.*HTTP 400.*check cloud and arm_scope/,
			"$c, identity: the refusal says what to check");
	}
}

# a sovereign cloud with arm_scope: the override scope, the override hosts
setup("SET cloud 'AzureUSGovernment', ADD arm_scope 'https://management.azure.com/.default'", 'secret');
my ($err, $reqs) = sync();
is($err, '', 'AzureUSGovernment with arm_scope: the sync worked');
my @login = grep { $_->{listener} eq 'login' } @$reqs;
ok(@login && !grep({ ($_->{body}{scope} // '') ne 'https://management.azure.com/.default' } @login),
	'AzureUSGovernment with arm_scope: the token request asked for arm_scope');
my $job = $node->safe_psql('postgres', "SELECT asr_failover('web-vm-01', 'latest_processed')");
my ($ret, $out) = $node->psql('postgres', "SELECT asr_wait($job, '120 s')", timeout => 180);
is($out, 'succeeded', 'AzureUSGovernment with arm_scope: a failover works through the overrides');

# a job waiting on a refused scope says why
setup("SET cloud 'AzureChinaCloud', DROP arm_scope", 'secret');
$job = $node->safe_psql('postgres', "SELECT asr_commit('web-vm-01')");
ok(wait_for_query($node,
		"SELECT last_error ~ 'AADSTS500011.*check cloud and arm_scope' FROM asr_jobs WHERE job_id = $job",
		't', 120), 'AzureChinaCloud: the waiting job says why');
ok(!(grep { $_->{host} ne $arm_host && $_->{listener} ne 'imds' } @{ emulator_requests($emu) }),
	'every request went to the overridden hosts');

$node->stop('fast');
done_testing();

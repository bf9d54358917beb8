# AsrTest.pm: shared set-up for asr's TAP tests (PostgreSQL::Test::Cluster).
#
# Every test gets clusters with asr preloaded and asr.database = 'postgres',
# plus small waiting helpers that poll with a deadline instead of sleeping
# a fixed time.
package AsrTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);
use Test::More;
use JSON::PP;
use HTTP::Tiny;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

our @EXPORT = qw(asr_node worker_pid wait_for_query start_emulator
  emulator_control emulator_requests emulator_last_seq configure_azure
  job_final_state world_with_vms);

my @emulators;

END
{
	# stop every emulator this test started, whatever happened
	kill 'TERM', $_->{pid} for grep { $_->{pid} } @emulators;

	# A process of the cluster that died of a signal the test did not send
	# (kill -9 is the tests' own) took the whole cluster through crash
	# recovery, which a test may not notice (the jobs resume afterwards):
	# the file fails, and PostgreSQL::Test::Cluster keeps its logs.
	for my $node (@PostgreSQL::Test::Cluster::all_nodes)
	{
		next unless -f $node->logfile;
		my @crashes = grep { /terminated by signal (\d+)/ && $1 != 9 }
		  split /\n/, slurp_file($node->logfile);
		next unless @crashes;
		diag("a process of node " . $node->name . " crashed:\n" . join("\n", @crashes));
		$? = 1 if $? == 0;
	}
}

# A new node with asr preloaded; extra postgresql.conf lines may follow.
sub asr_node
{
	my ($name, %params) = @_;
	my $conf = delete $params{conf} // '';
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%params);
	$node->append_conf('postgresql.conf', <<"CONF");
shared_preload_libraries = 'asr'
asr.database = 'postgres'
asr.poll_interval = 1s
restart_after_crash = on
$conf
CONF
	return $node;
}

# The pid of the running asr worker, or '' when none runs.
sub worker_pid
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'asr worker'");
}

# Poll $query until it returns $expected or $timeout seconds pass.  Errors
# (a server in crash recovery refuses connections) count as "not yet".
sub wait_for_query
{
	my ($node, $query, $expected, $timeout) = @_;
	$timeout //= 60;
	my $deadline = time() + $timeout;
	my $got = '';
	while (time() < $deadline)
	{
		my ($ret, $out, $err) = $node->psql('postgres', $query);
		$got = $ret == 0 ? $out : "error: $err";
		return 1 if $ret == 0 && $out eq $expected;
		usleep(100_000);
	}
	diag("waited ${timeout}s for [$query] = [$expected], last got [$got]");
	return 0;
}

# The state job $job ends in: waits up to $timeout seconds (default 180)
# for asr_jobs to say succeeded, failed or cancelled, then returns its
# state (still the unfinished one if the wait ran out, so that the caller's
# "is" fails and shows it).
sub job_final_state
{
	my ($node, $job, $timeout) = @_;
	wait_for_query($node,
		"SELECT state IN ('succeeded', 'failed', 'cancelled') FROM asr_jobs WHERE job_id = $job",
		't', $timeout // 180);
	return $node->safe_psql('postgres', "SELECT state FROM asr_jobs WHERE job_id = $job");
}

# Start the ASR emulator (test/emulator/asr-emulator) with extra arguments;
# returns its ready.json as a hash.  It is stopped when the test ends.
sub start_emulator
{
	my (%opts) = @_;
	my $top = $ENV{ASR_TOP} // abs_path(dirname(__FILE__) . '/../..');
	my $dir = PostgreSQL::Test::Utils::tempdir('emulator');
	my @args = ("$top/test/emulator/asr-emulator", '--state-dir', $dir,
		@{ $opts{args} // [] });
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDOUT, '>', "$dir/stdout.log");
		open(STDERR, '>', "$dir/stderr.log");
		exec(@args) or die "exec: $!";
	}
	my $emu = { pid => $pid, dir => $dir };
	push @emulators, $emu;
	my $deadline = time() + 30;
	while (!-f "$dir/ready.json" && time() < $deadline)
	{
		usleep(50_000);
	}
	die "emulator did not start: " . PostgreSQL::Test::Utils::slurp_file("$dir/stderr.log")
	  unless -f "$dir/ready.json";
	my $ready = decode_json(PostgreSQL::Test::Utils::slurp_file("$dir/ready.json"));
	$emu->{$_} = $ready->{$_} for keys %$ready;
	$emu->{pid} = $pid;
	return $emu;
}

# Call the emulator's control API; returns the decoded JSON answer.
sub emulator_control
{
	my ($emu, $method, $path, $body) = @_;
	my $http = HTTP::Tiny->new(timeout => 30);
	my $res = $http->request($method, $emu->{control_endpoint} . $path,
		defined $body
		? { content => encode_json($body), headers => { 'Content-Type' => 'application/json' } }
		: {});
	die "control $method $path: $res->{status} $res->{content}" unless $res->{success};
	return length($res->{content}) ? decode_json($res->{content}) : undef;
}

# The emulator's request log entries (arrayref), optionally filtered:
# method => 'POST', path => REGEX, listener => 'arm'|'login'|'imds',
# since => SEQ (entries after that sequence number).
sub emulator_requests
{
	my ($emu, %filter) = @_;
	my @q;
	push @q, "since=$filter{since}" if $filter{since};
	push @q, "listener=$filter{listener}" if $filter{listener};
	push @q, "method=$filter{method}" if $filter{method};
	push @q, 'path=' . _uri_escape($filter{path}) if $filter{path};
	my $res = emulator_control($emu, 'GET', '/requests' . (@q ? '?' . join('&', @q) : ''));
	return ref $res eq 'HASH' ? $res->{requests} // $res->{value} // [] : $res;
}

# The highest sequence number logged so far (entries are logged when
# answered, so the log is not always in sequence order).
sub emulator_last_seq
{
	my ($emu) = @_;
	my $last = 0;
	$last = $_->{seq} > $last ? $_->{seq} : $last for @{ emulator_requests($emu) };
	return $last;
}

# The emulator's default world with the first vault's VMs replaced by
# $count copies of its first VM, named by $name->($i) (VM) and
# $item->($i) (replicated item); returns the path of the world file.
sub world_with_vms
{
	my ($count, $name, $item) = @_;
	my $top = $ENV{ASR_TOP} // abs_path(dirname(__FILE__) . '/../..');
	my $world = decode_json(PostgreSQL::Test::Utils::slurp_file("$top/test/emulator/worlds/default.json"));
	my $vault = $world->{subscriptions}[0]{vaults}[0];
	my $template = $vault->{vms}[0];
	my @vms;
	for my $i (1 .. $count)
	{
		my %vm = %$template;
		$vm{name} = $name->($i);
		$vm{item_name} = $item->($i);
		$vm{disks} = [ map { { %$_, name => "$vm{name}_$_->{name}" } } @{ $template->{disks} } ];
		push @vms, \%vm;
	}
	$vault->{vms} = \@vms;
	my $dir = PostgreSQL::Test::Utils::tempdir('world');
	open(my $fh, '>', "$dir/world.json") or die "$dir/world.json: $!";
	print $fh encode_json($world);
	close $fh;
	return "$dir/world.json";
}

sub _uri_escape
{
	my ($s) = @_;
	$s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord($1))/ge;
	return $s;
}

# Point a node's asr at the emulator: CA, foreign server, user mapping,
# vault 'dr'.  auth => client_secret (default) | certificate | managed_identity;
# mapping => "..." replaces the user mapping's options, server_options =>
# "cloud '...'" adds options to the server.
sub configure_azure
{
	my ($node, $emu, %opts) = @_;
	my $auth = $opts{auth} // 'client_secret';
	my $mapping = $opts{mapping};
	my $server_options = $opts{server_options} ? ", $opts{server_options}" : '';
	if (defined $mapping)
	{
		# the caller's options as given
	}
	elsif ($auth eq 'client_secret')
	{
		$mapping = "auth 'client_secret', client_id '$emu->{client_id}', client_secret '$emu->{client_secret}'";
	}
	elsif ($auth eq 'certificate')
	{
		$mapping = "auth 'certificate', client_id '$emu->{cert_client_id}', certificate_file '$emu->{certificate_file}'";
	}
	else
	{
		$mapping = "auth 'managed_identity', client_id '$emu->{managed_identity_client_id}'";
	}
	$node->safe_psql('postgres', qq{
		CREATE SERVER azure FOREIGN DATA WRAPPER asr_azure OPTIONS (
			tenant_id '$emu->{tenant_id}',
			arm_endpoint '$emu->{arm_endpoint}',
			login_endpoint '$emu->{login_endpoint}',
			imds_endpoint '$emu->{imds_endpoint}'$server_options);
		CREATE USER MAPPING FOR PUBLIC SERVER azure OPTIONS ($mapping);
		SELECT asr_add_vault('dr', 'azure', '$emu->{subscription_id}',
		                     '$emu->{resource_group}', '$emu->{vault}',
		                     '{"cache_storage_account": {"eastus": "/subscriptions/$emu->{subscription_id}/resourceGroups/contoso-dr/providers/Microsoft.Storage/storageAccounts/cacheeastus", "westus2": "/subscriptions/$emu->{subscription_id}/resourceGroups/contoso-dr/providers/Microsoft.Storage/storageAccounts/cachewestus2"}}');
	});
	return;
}

1;

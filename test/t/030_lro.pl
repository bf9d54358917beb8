# The long-running-operation scenarios of arm-client.md section 2 that
# apply to POST actions, through the worker: the emulator answers a test
# failover following each named LRO pattern (GET /lro-patterns).  Whatever
# the 202 looks like, the ASR job is followed to its end, exactly one POST
# reaches Azure, every poll carries the action's x-ms-client-request-id,
# no token goes anywhere but the ARM host, and a Retry-After far ahead is
# honoured.  Then the answers that name no job: no LRO header and no
# request id (found in the vault's job list), and a synchronous 200.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use JSON::PP;

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $node = asr_node('lro', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 10s\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");

my ($arm_host) = $emu->{arm_endpoint} =~ m{^https://([^/]+)};
my @vms = ('app-vm-01', 'db-vm-01', 'web-vm-01');
my %item = map {
	$_ => $node->safe_psql('postgres',
		"SELECT regexp_replace(arm_id, '^.*/', '') FROM asr_items WHERE name = '$_'")
} @vms;

my $patterns = emulator_control($emu, 'GET', '/lro-patterns');
my @names = sort keys %$patterns;
ok(scalar(@names) >= 25, 'the emulator lists its LRO patterns');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub job_info
{
	my ($job) = @_;
	return q1("SELECT concat_ws(' | ', state, azure_job, detail_text, last_error, error_code, error_message) "
		. "FROM (SELECT j.*, (SELECT string_agg(detail, '; ') FROM asr_job_events e WHERE e.job_id = j.job_id) AS detail_text "
		. "FROM asr_jobs j WHERE job_id = $job) s");
}

# Run one test failover per VM with its own fault rules, then clean up.
# $checks->($vm, $job) runs while the job is still running (optional).
sub drill
{
	my ($label, $rules, $checks) = @_;
	my %job;
	for my $vm (keys %$rules)
	{
		my @r = map { { %$_, match => { method => 'POST', path => "$item{$vm}/testFailover\$" } } }
		  @{ $rules->{$vm} };
		emulator_control($emu, 'POST', '/faults', \@r);
		$job{$vm} = q1("SELECT asr_test_failover('$vm', 'latest')");
	}
	if ($checks)
	{
		$checks->($_, $job{$_}) for sort keys %job;
	}
	for my $vm (sort keys %job)
	{
		my $j = $job{$vm};
		my $what = "$label->{$vm}";
		is(job_final_state($node, $j), 'succeeded', "$what: the job succeeds")
		  or diag(job_info($j));
		my $posts = emulator_requests($emu, method => 'POST', path => "$item{$vm}/testFailover\$");
		my $crid = q1("SELECT client_request_id FROM asr_jobs WHERE job_id = $j");
		is(scalar(grep { $_->{client_request_id} eq $crid } @$posts), 1,
			"$what: exactly one POST reached Azure");
		my $name = q1("SELECT azure_job FROM asr_jobs WHERE job_id = $j");
		next if $name eq '';	# finished synchronously: nothing to poll
		my $polls = emulator_requests($emu, method => 'GET', path => "replicationJobs/$name");
		my @bad = grep { $_->{client_request_id} ne $crid } @$polls;
		ok(@$polls > 0 && !@bad, "$what: every poll carries the action's client request id");
	}
	for my $vm (sort keys %job)
	{
		my $c = q1("SELECT asr_test_failover_cleanup('$vm')");
		is(job_final_state($node, $c), 'succeeded', "$label->{$vm}: cleanup succeeds") or diag(job_info($c));
	}
	emulator_control($emu, 'DELETE', '/faults');
	return \%job;
}

# every pattern, three VMs at a time
my @todo = @names;
while (@todo)
{
	my (%rules, %label);
	for my $vm (@vms)
	{
		last unless @todo;
		my $p = shift @todo;
		$rules{$vm} = [ { action => 'lro', pattern => $p, count => 1 } ];
		$label{$vm} = "pattern $p";
	}
	my %pattern_of = map { $_ => $rules{$_}[0]{pattern} } keys %rules;
	drill(\%label, \%rules, sub {
		my ($vm, $job) = @_;
		my $p = $pattern_of{$vm};
		my $far = $p eq 'retry-after-httpdate' ? 300 : $p eq 'location-chain' ? 20 : 0;
		return unless $far;
		# the first poll waits for the 202's Retry-After (clamped to 10 min)
		wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $job", 'running', 60);
		is(q1("SELECT next_poll_at > now() + interval '$far s' FROM asr_jobs WHERE job_id = $job"),
			't', "pattern $p: the first poll waits for Retry-After");
		my $name = q1("SELECT azure_job FROM asr_jobs WHERE job_id = $job");
		my $early = emulator_requests($emu, method => 'GET', path => "replicationJobs/$name");
		is(scalar(@$early), 0, "pattern $p: no poll before Retry-After");
		# then let the test move on: as if the time had passed
		q1("UPDATE asr_jobs SET next_poll_at = now() WHERE job_id = $job");
	});
}

# nothing with a token went anywhere but the ARM host
my $all = emulator_requests($emu);
my @foreign = grep { $_->{authorization} && ($_->{host} // '') ne $arm_host } @$all;
is(scalar @foreign, 0, 'no token was sent to another host')
  or diag(encode_json([ map { "$_->{method} $_->{host} $_->{path}" } @foreign ]));
is(scalar(grep { ($_->{local_address} // '') =~ /^127\.0\.0\.2/ } @$all), 0,
	'nothing reached the unreachable status host');
like(q1("SELECT string_agg(detail, ' ') FROM asr_job_events WHERE detail LIKE '%not followed%'"),
	qr/another host/, 'an unreachable status URL is named as not followed');

# answers that name no job
drill(
	{ 'app-vm-01' => 'no LRO header, no request id', 'db-vm-01' => 'synchronous 200',
	  'web-vm-01' => 'synchronous 200 naming no job' },
	{
		'app-vm-01' => [ { action => 'missing_headers', count => 1,
				headers => [ 'Location', 'Azure-AsyncOperation', 'x-ms-request-id' ] } ],
		'db-vm-01' => [ { action => 'sync_200', count => 1 } ],
		'web-vm-01' => [ { action => 'sync_200', count => 1 },
			{ action => 'missing_headers', count => 1, headers => ['x-ms-request-id'] } ],
	});
like(q1("SELECT string_agg(detail, ' ') FROM asr_job_events e JOIN asr_jobs j USING (job_id) "
		. "JOIN asr_items i USING (item_id) WHERE i.name = 'web-vm-01'"),
	qr/synchronously/, 'a 200 naming no job finished synchronously');

is(q1("SELECT count(*) FROM asr_jobs WHERE state <> 'succeeded'"), '0', 'no job lost or failed');
$node->stop('fast');
done_testing();

# Jobs that do not simply succeed, and an Azure that misbehaves, through the
# worker and the emulator: a failing task (Azure's code, message, possible
# causes and recommended action land in asr_jobs) and asr_restart; a
# Suspended job surfaced as 'suspended', never resumed by the worker, and
# resumed with asr_resume; asr_cancel of a running job; 429 and 5xx storms,
# malformed, truncated and huge poll bodies and status URLs on a foreign
# host, Retry-After and retry-after-ms, a poll that times out -- none of
# which fails a job, sends a token astray or stops the worker; a refused
# request that fails only its own job; asr.job_timeout.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use JSON::PP;

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $node = asr_node('faults', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 10s\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");

my ($arm_host) = $emu->{arm_endpoint} =~ m{^https://([^/]+)};
my ($arm_port) = $arm_host =~ /:(\d+)$/;
my %item = map {
	$_ => $node->safe_psql('postgres',
		"SELECT regexp_replace(arm_id, '^.*/', '') FROM asr_items WHERE name = '$_'")
} ('app-vm-01', 'db-vm-01', 'web-vm-01');

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub job_info
{
	my ($job) = @_;
	return q1("SELECT concat_ws(' | ', state, azure_job, last_error, error_code, error_message) "
		. "FROM asr_jobs WHERE job_id = $job");
}

sub azure_job { return q1("SELECT azure_job FROM asr_jobs WHERE job_id = $_[0]"); }

sub polls_of
{
	my ($name) = @_;
	return scalar @{ emulator_requests($emu, method => 'GET', path => "replicationJobs/$name\$") };
}

sub add_fault { return emulator_control($emu, 'POST', '/faults', $_[0])->{id}; }

my $worker = worker_pid($node);

# --- a failing task, then asr_restart ---------------------------------------
add_fault({ action => 'job_fail', match => { scenario => 'TestFailover', item => 'app-vm-01' },
		task => 1, code => '70094', message => 'Failover of the virtual machine failed.',
		possible_causes => 'The source virtual machine could not be reached.',
		recommended_action => 'Check the network of the source region and retry.' });
# --- a Suspended job ----------------------------------------------------------
add_fault({ action => 'job_suspend', match => { scenario => 'TestFailover', item => 'db-vm-01' },
		task => 1, description => 'Waiting for the DBA to confirm' });
# --- a job that never ends until it is cancelled --------------------------------
add_fault({ action => 'job_stuck', match => { scenario => 'TestFailover', item => 'web-vm-01' },
		task => 1 });

my $failing = q1("SELECT asr_test_failover('app-vm-01', 'latest')");
my $suspended = q1("SELECT asr_test_failover('db-vm-01', 'latest')");
my $stuck = q1("SELECT asr_test_failover('web-vm-01', 'latest')");

is(job_final_state($node, $failing), 'failed', 'a failing task fails the job');
is(q1("SELECT error_code FROM asr_jobs WHERE job_id = $failing"), '70094', 'with Azure\'s error code');
my $msg = q1("SELECT error_message FROM asr_jobs WHERE job_id = $failing");
like($msg, qr/Failover of the virtual machine failed\./, 'with Azure\'s message');
like($msg, qr/could not be reached/, 'with the possible causes');
like($msg, qr/Check the network of the source region/, 'with the recommended action');

my $restart = q1("SELECT asr_restart($failing)");
is(job_final_state($node, $restart), 'succeeded', 'asr_restart of the failed job succeeds') or diag(job_info($restart));
is(scalar @{ emulator_requests($emu, method => 'POST', path => azure_job($failing) . '/restart$') }, 1,
	'one restart POST reached Azure');

ok(wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $suspended", 'suspended', 120),
	'a Suspended ASR job is surfaced as suspended');
like(q1("SELECT detail FROM asr_job_events WHERE job_id = $suspended AND state = 'suspended'"),
	qr/asr_resume/, 'its event says how to go on');
my $name = azure_job($suspended);
my $seen = polls_of($name);
ok(poll_more($name, $seen + 3),
	'the worker keeps polling the suspended job');
is(q1("SELECT state FROM asr_jobs WHERE job_id = $suspended"), 'suspended', 'it stays suspended');
is(scalar @{ emulator_requests($emu, method => 'POST', path => "$name/resume\$") }, 0,
	'the worker never resumes a job by itself');
q1("SELECT asr_resume($suspended, 'confirmed by the DBA')");
is(job_final_state($node, $suspended), 'succeeded', 'asr_resume: the job goes on and succeeds') or diag(job_info($suspended));
my $resumes = emulator_requests($emu, method => 'POST', path => "$name/resume\$");
is(scalar @$resumes, 1, 'exactly one resume POST');
is($resumes->[0]{body}{properties}{comments}, 'confirmed by the DBA', 'with the DBA\'s comment');

ok(wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $stuck", 'running', 60), 'the stuck job runs');
q1("SELECT asr_cancel($stuck)");
is(job_final_state($node, $stuck), 'cancelled', 'asr_cancel of a running job cancels it in Azure') or diag(job_info($stuck));
is(scalar @{ emulator_requests($emu, method => 'POST', path => azure_job($stuck) . '/cancel$') }, 1,
	'one cancel POST');

for my $vm ('app-vm-01', 'db-vm-01')
{
	my $c = q1("SELECT asr_test_failover_cleanup('$vm')");
	is(job_final_state($node, $c), 'succeeded', "$vm: cleanup succeeds") or diag(job_info($c));
}
emulator_control($emu, 'DELETE', '/faults');

# Poll until the emulator has seen more than $n polls of job $name.
sub poll_more
{
	my ($name, $n) = @_;
	for (1 .. 600)
	{
		return 1 if polls_of($name) > $n;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# --- storms and broken answers; one refused request -------------------------
emulator_control($emu, 'DELETE', '/requests');
my @rules = (
	add_fault({ action => 'status', status => 429, retry_after => 1, count => 6,
			match => { listener => 'arm' } }),
	add_fault({ action => 'status', status => 500, count => 3,
			match => { method => 'POST', path => "$item{'db-vm-01'}/testFailover\$" } }),
	add_fault({ action => 'foreign_async', host => 'localhost', count => undef,
			match => { method => 'POST', path => "$item{'db-vm-01'}/testFailover\$" } }),
	add_fault({ action => 'status', status => 503, count => 4,
			match => { method => 'GET', path => 'replicationJobs/[^/]+$' } }),
	add_fault({ action => 'malformed', count => 2, match => { method => 'GET', path => 'replicationJobs/[^/]+$' } }),
	add_fault({ action => 'truncate', count => 1, match => { method => 'GET', path => 'replicationJobs/[^/]+$' } }),
	add_fault({ action => 'huge', count => 1, match => { method => 'GET', path => 'replicationJobs/[^/]+$' } }),
	add_fault({ action => 'status', status => 400, count => 1,
			body => { error => { code => 'BadRequest', message => 'The request is invalid for this test.' } },
			match => { method => 'POST', path => "$item{'web-vm-01'}/testFailover\$" } }),
);
my $stormy = q1("SELECT asr_test_failover('db-vm-01', 'latest')");
my $refused = q1("SELECT asr_test_failover('web-vm-01', 'latest')");
is(job_final_state($node, $refused), 'failed', 'a refused request fails its job');
is(q1("SELECT error_code FROM asr_jobs WHERE job_id = $refused"), 'BadRequest', 'with Azure\'s code');
is(job_final_state($node, $stormy), 'succeeded', 'through 429s, 5xx, broken bodies and foreign URLs the other job succeeds')
  or diag(job_info($stormy));
my $log = emulator_requests($emu);
my %fired;
for my $r (@$log) { $fired{$_}++ for @{ $r->{faults} // [] }; }
is(scalar(grep { !$fired{$_} } @rules), 0, 'every fault fired')
  or diag(encode_json(emulator_control($emu, 'GET', '/faults')));
my $posts = emulator_requests($emu, method => 'POST', path => "$item{'db-vm-01'}/testFailover\$");
is(scalar(grep { ($_->{status} // '') eq '202' } @$posts), 1, 'exactly one test failover was accepted');
is(scalar(grep { $_->{authorization} && ($_->{host} // '') ne $arm_host } @$log), 0,
	'no token was sent to the foreign status host');
is(scalar(grep { ($_->{host} // '') =~ /^localhost/ } @$log), 0, 'nothing was sent there at all');
like(q1("SELECT string_agg(detail, ' ') FROM asr_job_events WHERE job_id = $stormy"),
	qr/not followed \(the URL Azure returned is on another host/, 'the job says why the URLs were not followed');
is(worker_pid($node), $worker, 'the worker never stopped');
isnt(q1("SELECT last_error FROM asr_worker_status"), '', 'asr_worker_status shows the last error');
my $c = q1("SELECT asr_test_failover_cleanup('db-vm-01')");
is(job_final_state($node, $c), 'succeeded', 'db-vm-01: cleanup succeeds') or diag(job_info($c));
emulator_control($emu, 'DELETE', '/faults');

# --- Retry-After and retry-after-ms on polls; status URLs with userinfo or http ---
emulator_control($emu, 'DELETE', '/requests');
my $poll_path = 'replicationJobs/[0-9a-fA-F-]{36}$';
add_fault({ action => 'status', status => 500, count => 1, headers => { 'retry-after-ms' => '2500' },
		match => { method => 'GET', path => $poll_path } });
add_fault({ action => 'status', status => 503, retry_after => 3, count => 1, skip => 1,
		match => { method => 'GET', path => $poll_path } });
add_fault({ action => 'foreign_async', host => '127.0.0.1', userinfo => 'user:pass', count => undef,
		match => { method => 'POST', path => "$item{'web-vm-01'}/testFailover\$" } });
add_fault({ action => 'foreign_async', host => '127.0.0.1', scheme => 'http', count => undef,
		match => { method => 'POST', path => "$item{'web-vm-01'}/testFailoverCleanup\$" } });
# a poll that outlasts asr.http_timeout (10 s): a timeout, retried
add_fault({ action => 'delay', delay_ms => 12000, count => 1, skip => 2,
		match => { method => 'GET', path => $poll_path } });
my $paced = q1("SELECT asr_test_failover('web-vm-01', 'latest')");
ok(wait_for_query($node, "SELECT requests_in_flight >= 1 AND phase = 'working' FROM asr_worker_status", 't', 60),
	'asr_worker_status shows the requests in flight');
is(job_final_state($node, $paced), 'succeeded', 'a job whose polls ask to wait or time out succeeds') or diag(job_info($paced));
my $polls = emulator_requests($emu, method => 'GET', path => 'replicationJobs/' . azure_job($paced) . '$');
for my $i (0 .. $#$polls - 1)
{
	my ($r, $next) = ($polls->[$i], $polls->[ $i + 1 ]);
	next unless ($r->{status} // '') =~ /^(500|503)$/;
	my $want = $r->{status} eq '500' ? 2.5 : 3;
	ok($next->{time} - $r->{time} >= $want - 0.05,
		"after a $r->{status} the poll waits as asked (" . ($r->{status} eq '500' ? 'retry-after-ms' : 'Retry-After') . ')')
	  or diag("waited " . ($next->{time} - $r->{time}) . " s");
}
is(scalar(grep { ($_->{status} // '') =~ /^(500|503)$/ } @$polls), 2, 'both slow-down answers were seen');
ok(scalar(grep { ($_->{duration_ms} // 0) >= 10000 } @$polls), 'one poll was slower than asr.http_timeout');
like(q1("SELECT string_agg(detail, ' ') FROM asr_job_events WHERE job_id = $paced"),
	qr/carries user information/, 'a status URL with user information is not followed');
my $clean = q1("SELECT asr_test_failover_cleanup('web-vm-01')");
is(job_final_state($node, $clean), 'succeeded', 'web-vm-01: cleanup succeeds') or diag(job_info($clean));
like(q1("SELECT string_agg(detail, ' ') FROM asr_job_events WHERE job_id = $clean"),
	qr/is not https/, 'a plain-http status URL is not followed');
$log = emulator_requests($emu);
is(scalar(grep { $_->{authorization} && ($_->{listener} ne 'arm' || ($_->{host} // '') ne $arm_host) } @$log), 0,
	'no token left the ARM host');
is(scalar(grep { $_->{path} =~ /operationresults|replicationOperationStatus/i } @$log), 0,
	'the rejected status URLs were never requested');
emulator_control($emu, 'DELETE', '/faults');

# --- asr.job_timeout -----------------------------------------------------------
add_fault({ action => 'job_stuck', match => { scenario => 'TestFailover', item => 'app-vm-01' }, task => 1 });
q1("ALTER SYSTEM SET asr.job_timeout = '1h'");
q1("SELECT pg_reload_conf()");
my $late = q1("SELECT asr_test_failover('app-vm-01', 'latest')");
ok(wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $late", 'running', 60), 'the stuck job runs');
# as if it had been asked for two hours ago
q1("UPDATE asr_jobs SET requested_at = requested_at - interval '2 hours' WHERE job_id = $late");
is(job_final_state($node, $late), 'failed', 'a job that outlives asr.job_timeout fails');
is(q1("SELECT error_code FROM asr_jobs WHERE job_id = $late"), 'JobTimeout', 'with JobTimeout');
like(q1("SELECT error_message FROM asr_jobs WHERE job_id = $late"), qr/asr\.job_timeout/, 'saying which setting');

# a request whose outcome stays unknown (ARM answered 500 and the vault's
# job list cannot be read) until asr.job_timeout: failed, not sent again
emulator_control($emu, 'DELETE', '/faults');
emulator_control($emu, 'DELETE', '/requests');
my $web_item = q1("SELECT regexp_replace(arm_id, '^.*/', '') FROM asr_items WHERE name = 'web-vm-01'");
add_fault({ action => 'status', status => 500, count => 1,
		match => { method => 'POST', path => "$web_item/testFailover\$" } });
add_fault({ action => 'status', status => 503, count => undef,
		match => { method => 'GET', path => 'replicationJobs$' } });
my $unknown = q1("SELECT asr_test_failover('web-vm-01', 'latest')");
ok(wait_for_query($node, "SELECT state = 'submitting' AND last_error LIKE 'reconciling:%' FROM asr_jobs WHERE job_id = $unknown", 't', 120),
	'the job whose POST got a 500 waits, reconciling, while the job list fails') or diag(job_info($unknown));
q1("UPDATE asr_jobs SET requested_at = requested_at - interval '2 hours' WHERE job_id = $unknown");
is(job_final_state($node, $unknown), 'failed', 'once asr.job_timeout has passed it fails');
is(q1("SELECT error_code FROM asr_jobs WHERE job_id = $unknown"), 'JobTimeout', 'with JobTimeout');
like(q1("SELECT error_message FROM asr_jobs WHERE job_id = $unknown"), qr/asr\.job_timeout.*not sent again/,
	'saying that the outcome is unknown and nothing was sent again');
is(scalar @{ emulator_requests($emu, method => 'POST', path => "$web_item/testFailover\$") }, 1,
	'one POST only');

$node->stop('fast');
done_testing();

# Never twice, never lost: the worker is killed (kill -9) or PostgreSQL is
# restarted immediately at each step of a failover, a commit and a
# reprotect -- before the POST, with the POST in flight, with its answer
# lost, while polling -- and every job still ends succeeded with exactly
# one accepted POST per action.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use Time::HiRes qw(usleep);
use JSON::PP;

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $node = asr_node('once', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 5s\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");

sub crash
{
	my ($how) = @_;
	if ($how eq 'kill9')
	{
		my $pid = worker_pid($node);
		kill 'KILL', $pid if $pid;
	}
	else
	{
		$node->stop('immediate');
		$node->start;
	}
}

sub wait_job
{
	my ($job) = @_;
	return wait_for_query($node,
		"SELECT state FROM asr_jobs WHERE job_id = $job", 'succeeded', 180);
}

sub accepted_posts
{
	my ($vm_item) = @_;
	my $posts = emulator_requests($emu, method => 'POST', path => "$vm_item/unplannedFailover");
	return scalar grep { ($_->{status} // '') =~ /^(202|dropped-after)$/ } @$posts;
}

my @cases = (
	# [vm, fault on the way, how to crash, what the case is about]
	['app-vm-01', { action => 'delay', delay_ms => 4000,
			match => { method => 'GET', path => 'replicationProtectedItems/[^/]+$' } },
		'kill9', 'killed before the POST'],
	['db-vm-01', { action => 'delay', delay_ms => 3000,
			match => { method => 'POST', path => 'unplannedFailover' } },
		'restart', 'restarted with the POST in flight'],
	['web-vm-01', { action => 'drop', after => JSON::PP::true,
			match => { method => 'POST', path => 'unplannedFailover' } },
		'none', 'the 202 is lost on the way back'],
);

for my $case (@cases)
{
	my ($vm, $fault, $how, $what) = @$case;
	emulator_control($emu, 'POST', '/faults', $fault);
	my $item = $node->safe_psql('postgres',
		"SELECT regexp_replace(arm_id, '^.*/', '') FROM asr_items WHERE name = '$vm'");
	my $job = $node->safe_psql('postgres', "SELECT asr_failover('$vm', 'latest_processed')");
	if ($how ne 'none')
	{
		# wait until the job is being sent, then crash
		wait_for_query($node, "SELECT state <> 'queued' FROM asr_jobs WHERE job_id = $job", 't', 30);
		usleep(500_000);
		crash($how);
	}
	ok(wait_job($job), "$vm: $what: the job still succeeds")
		or diag($node->safe_psql('postgres', "SELECT state, last_error, error_message FROM asr_jobs WHERE job_id = $job"));
	is(accepted_posts($item), 1, "$vm: $what: exactly one failover reached Azure");
	emulator_control($emu, 'DELETE', '/faults');
}

# killed while polling: the job resumes from the stored job name
# slow the emulated clock down so that the commit job runs for seconds
emulator_control($emu, 'POST', '/clock', { scale => 1 });
my $commit = $node->safe_psql('postgres', "SELECT asr_commit('app-vm-01')");
wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $commit", 'running', 60);
crash('kill9');
emulator_control($emu, 'POST', '/clock', { scale => 600 });
ok(wait_job($commit), 'commit: killed while polling, the job still succeeds');
is(scalar @{ emulator_requests($emu, method => 'POST', path => 'failoverCommit') }, 1,
	'commit: exactly one commit POST');

# the other way round for the commits and a reprotect: restart while
# polling, kill -9 with the POST in flight, restart before the POST
sub posts_to
{
	my ($path) = @_;
	return scalar grep { ($_->{status} // '') =~ /^(202|dropped-after)$/ }
	  @{ emulator_requests($emu, method => 'POST', path => $path) };
}

my @later = (
	['db-vm-01', 'commit', 'failoverCommit', 'restart', 'polling'],
	['web-vm-01', 'commit', 'failoverCommit', 'kill9', 'post'],
	['app-vm-01', 'reprotect', 'switchprotection', 'restart', 'before'],
	['db-vm-01', 'reprotect', 'switchprotection', 'kill9', 'polling'],
);
for my $case (@later)
{
	my ($vm, $action, $post, $how, $when) = @$case;
	my $what = "$action of $vm: " . ($how eq 'kill9' ? 'killed' : 'restarted')
	  . ($when eq 'polling' ? ' while polling' : $when eq 'post' ? ' with the POST in flight' : ' before the POST');
	my $before = posts_to($post);
	emulator_control($emu, 'POST', '/faults', { action => 'delay', delay_ms => 3000, count => 1,
			match => { method => 'POST', path => "$post\$" } }) if $when eq 'post';
	emulator_control($emu, 'POST', '/faults', { action => 'delay', delay_ms => 4000, count => 1,
			match => { method => 'GET', path => 'replicationProtectedItems/[^/]+$' } }) if $when eq 'before';
	emulator_control($emu, 'POST', '/clock', { scale => $action eq 'reprotect' ? 60 : 1 }) if $when eq 'polling';
	my $job = $node->safe_psql('postgres', "SELECT asr_$action('$vm')");
	if ($when eq 'polling')
	{
		wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $job", 'running', 60);
	}
	else
	{
		wait_for_query($node, "SELECT state <> 'queued' FROM asr_jobs WHERE job_id = $job", 't', 30);
		usleep(500_000);
	}
	crash($how);
	emulator_control($emu, 'POST', '/clock', { scale => 600 }) if $when eq 'polling';
	ok(wait_job($job), "$what: the job still succeeds")
	  or diag($node->safe_psql('postgres', "SELECT state, last_error, error_message FROM asr_jobs WHERE job_id = $job"));
	is(posts_to($post) - $before, 1, "$what: exactly one POST reached Azure");
	emulator_control($emu, 'DELETE', '/faults');
}

# An answer slower than asr.http_timeout (5 s), and ASR acts on the request
# when it arrives (9 s): listing the vault's jobs at once finds nothing, and
# the item does not show the scenario yet, so a worker that reconciled at
# once would send the action again (or fail it).  It reconciles only once
# the request can no longer land (ARM's 60 s proxy timeout).
for (1 .. 60)
{
	$node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");
	last if $node->safe_psql('postgres',
		"SELECT 'TestFailover' = ANY (allowed_operations) FROM asr_items WHERE name = 'app-vm-01'") eq 't';
	sleep 2;
}
my $tfo_before = posts_to('testFailover$');
emulator_control($emu, 'POST', '/faults', { action => 'delay', delay_ms => 9000, count => 1,
		match => { method => 'POST', path => 'testFailover$' } });
my $tfo = $node->safe_psql('postgres', "SELECT asr_test_failover('app-vm-01', 'latest')");
ok(wait_for_query($node, "SELECT state FROM asr_jobs WHERE job_id = $tfo", 'succeeded', 240),
	'test failover answered after asr.http_timeout: the job succeeds')
  or diag($node->safe_psql('postgres', "SELECT state, last_error, error_message FROM asr_jobs WHERE job_id = $tfo"));
is(posts_to('testFailover$') - $tfo_before, 1, 'test failover answered late: exactly one POST reached Azure');
like($node->safe_psql('postgres', "SELECT string_agg(detail, ' / ') FROM asr_job_events WHERE job_id = $tfo"),
	qr/found ASR job .* not sent again/, 'the job was found in Azure, not sent again');
emulator_control($emu, 'DELETE', '/faults');

is($node->safe_psql('postgres', "SELECT count(*) FROM asr_jobs WHERE state NOT IN ('succeeded')"),
	'0', 'no job lost or failed');
$node->stop('fast');
done_testing();

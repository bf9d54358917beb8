# The whole A2A story through the worker and the emulator: sync, failover
# to the latest processed point, change recovery point, commit, reprotect,
# protected in reverse, failback, commit, reprotect back.  Every action is
# POSTed to Azure exactly once.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1']);
my $node = asr_node('workflow', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);

my $seen = $node->safe_psql('postgres', "SELECT asr_sync('dr', '60 s')");
cmp_ok($seen, '>=', 3, "asr_sync read the vault's items ($seen)");
is($node->safe_psql('postgres',
		"SELECT protection_state || '/' || active_location FROM asr_items WHERE name = 'app-vm-01'"),
	'Protected/Primary', 'app-vm-01 is protected, running in its primary region');
cmp_ok($node->safe_psql('postgres',
		"SELECT count(*) FROM asr_recovery_points p JOIN asr_items i USING (item_id) WHERE i.name = 'app-vm-01'"),
	'>', 0, 'recovery points were listed');

# run one action to its end; returns the job's final state
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

my $failover = act("asr_failover('app-vm-01', 'latest_processed')", 'failover to the latest processed point');
is($node->safe_psql('postgres',
		"SELECT protection_state || '/' || active_location FROM asr_items WHERE name = 'app-vm-01'"),
	'UnplannedFailoverCommitPendingStatesBegin/Recovery', 'failed over, commit pending');
is($node->safe_psql('postgres',
		"SELECT used_recovery_point IS NOT NULL AND recovery_point IS NOT NULL FROM asr_jobs WHERE job_id = $failover"),
	't', 'the job records the point sent and the point Azure used');
is($node->safe_psql('postgres',
		"SELECT string_agg(state, ',' ORDER BY event_id) FROM asr_job_events WHERE job_id = $failover"),
	'queued,submitting,running,succeeded', 'the audit trail has every state');
is($node->safe_psql('postgres', "SELECT progress FROM asr_jobs WHERE job_id = $failover"),
	'100', 'progress reached 100');

my $older = $node->safe_psql('postgres',
	"SELECT p.name FROM asr_recovery_points p JOIN asr_items i USING (item_id)
	  WHERE i.name = 'app-vm-01' ORDER BY point_time DESC OFFSET 1 LIMIT 1");
act("asr_change_recovery_point('app-vm-01', '$older')", 'change of recovery point');
like($node->safe_psql('postgres',
		"SELECT properties #>> '{failoverRecoveryPointId}' FROM asr_items WHERE name = 'app-vm-01'"),
	qr/\Q$older\E$/i, 'Azure now uses the chosen point');

act("asr_commit('app-vm-01')", 'commit');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM asr_recovery_points p JOIN asr_items i USING (item_id) WHERE i.name = 'app-vm-01'"),
	'0', 'commit leaves no recovery points');

my $old_id = $node->safe_psql('postgres', "SELECT arm_id FROM asr_items WHERE name = 'app-vm-01'");
my $reprotect = act("asr_reprotect('app-vm-01')", 'reprotect');
my $new_id = $node->safe_psql('postgres', "SELECT arm_id FROM asr_items WHERE name = 'app-vm-01'");
isnt(lc $new_id, lc $old_id, 'the item moved to its new path');
like($new_id, qr/westus2/i, 'it now lives in the other region');
is($node->safe_psql('postgres', "SELECT lower(new_item_arm_id) FROM asr_jobs WHERE job_id = $reprotect"),
	lc $new_id, 'the job records the new item id');

# initial replication in reverse until Protected (the sync follows it)
ok(wait_for_query($node,
		"SELECT asr_sync('dr', '30 s') >= 0 AND protection_state = 'Protected' FROM asr_items WHERE name = 'app-vm-01'",
		't', 120), 'protected in reverse after initial replication');

act("asr_failover('app-vm-01', 'latest')", 'failback');
act("asr_commit('app-vm-01')", 'failback commit');
act("asr_reprotect('app-vm-01')", 'reprotect back');
like($node->safe_psql('postgres', "SELECT arm_id FROM asr_items WHERE name = 'app-vm-01'"),
	qr/default-eastus\//i, 'the item is back in its original region');

# exactly one POST per action in Azure's log
my $posts = emulator_requests($emu, method => 'POST', path => '(unplannedFailover|applyRecoveryPoint|failoverCommit|switchprotection)');
my %count;
$count{ lc(($_->{path} =~ m{/([^/]+)$})[0]) }++ for @$posts;
is_deeply(\%count,
	{ unplannedfailover => 2, applyrecoverypoint => 1, failovercommit => 2, switchprotection => 2 },
	'each action was POSTed exactly once');
ok(!(grep { $_->{listener} ne 'login' && $_->{host} !~ /^127\.0\.0\.1:/ } @{ emulator_requests($emu) }),
	'no request went to another host');

$node->stop('fast');
done_testing();

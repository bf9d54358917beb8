# Polling at scale: with more than five jobs of a vault running, the worker
# polls the vault's job list ($filter StartTime, following nextLink) instead
# of one GET per job.  Proven by making every single-job GET fail while
# twelve test failovers run: they can only finish through the list.  Then
# ARM's read budget is made tiny: the worker is throttled (429,
# asr_worker_status.throttled_until), paces itself, and every job still
# finishes.  Twelve jobs whose POSTs were answered 500 after ASR acted are
# reconciled through one listing of the vault's job list.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use JSON::PP;
use Time::HiRes qw(usleep);

# a world with twelve VMs in the vault
my $world_file = world_with_vms(12, sub { sprintf('scale-vm-%02d', $_[0]) }, sub { sprintf('scaleItem%02d', $_[0]) . ('x' x 30) });

my $emu = start_emulator(args => ['--time-scale', '600', '--retry-after', '1', '--world', $world_file]);
my $node = asr_node('scale', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 10s\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '120 s')");

sub q1 { return $node->safe_psql('postgres', $_[0]); }

sub show
{
	my ($ids) = @_;
	diag(q1("SELECT string_agg(concat_ws(' | ', job_id, state, azure_state, progress, next_poll_at - now(), last_error), E'\n') "
		. "FROM asr_jobs WHERE job_id IN ($ids)"));
	my %n;
	$n{"$_->{method} " . ($_->{path} =~ s{^.*/(replicationJobs|replicationProtectedItems)}{$1}r =~ s/[0-9a-f-]{36}/G/gr) . " $_->{status}"}++
	  for @{ emulator_requests($emu) };
	diag(join("\n", map { "$n{$_} $_" } sort keys %n));
	diag(q1("SELECT concat_ws(' | ', requests_in_flight, last_error, throttled_until, phase) FROM asr_worker_status"));
}

is(q1("SELECT count(*) FROM asr_items"), '12', 'twelve items');

# jobs that run for a few real seconds, a job list of three per page (and
# recovery points too, which makes the final re-read of each item slow)
emulator_control($emu, 'POST', '/config', { page_size => 3 });
emulator_control($emu, 'POST', '/clock', { scale => 20 });
emulator_control($emu, 'DELETE', '/requests');
my $single = emulator_control($emu, 'POST', '/faults',
	{ action => 'status', status => 503, count => undef,
	  match => { method => 'GET', path => 'replicationJobs/[0-9a-fA-F-]{36}$' } })->{id};

my $jobs = q1("SELECT string_agg(asr_test_failover(name, 'latest')::text, ',') FROM asr_items");
ok(wait_for_query($node,
		"SELECT count(*) >= 7 FROM asr_jobs WHERE job_id IN ($jobs) AND state = 'succeeded'", 't', 90),
	'with every single-job poll failing, the jobs finish through the job list') or show($jobs);
my $lists = emulator_requests($emu, method => 'GET', path => 'replicationJobs$');
my @filtered = grep { ($_->{query_string} // '') =~ /StartTime(%20|\+| )eq/i } @$lists;
ok(scalar @filtered, 'the job list is read with a StartTime filter');
ok(scalar(grep { ($_->{query_string} // '') =~ /skipToken/i } @filtered), 'and its nextLink pages are followed');
emulator_control($emu, 'DELETE', "/faults/$single");
emulator_control($emu, 'POST', '/config', { page_size => 1000 });
ok(wait_for_query($node,
		"SELECT count(*) FROM asr_jobs WHERE job_id IN ($jobs) AND state = 'succeeded'", '12', 240),
	'all twelve jobs succeed');
is(q1("SELECT count(*) FROM asr_jobs WHERE job_id IN ($jobs) AND tasks IS NOT NULL AND progress = 100"), '12',
	'each job has its tasks and progress from Azure');

# Item re-reads in a wave: before sending, the twelve items are read from
# the vault's item list (five per page), not with twelve GETs; when that
# listing fails, each item gets its own GET and nothing else changes.
sub item_gets
{
	my ($reqs) = @_;
	return scalar grep { $_->{method} eq 'GET' && $_->{path} =~ m{/replicationProtectedItems/[^/]+$} } @$reqs;
}
sub item_lists
{
	my ($reqs) = @_;
	return scalar grep { $_->{method} eq 'GET' && $_->{path} =~ m{/replicationProtectedItems$} } @$reqs;
}
my $cleanup_of = sub {
	my $ids = q1("SELECT string_agg(asr_test_failover_cleanup(name)::text, ',') FROM asr_items");
	ok(wait_for_query($node,
			"SELECT count(*) FROM asr_jobs WHERE job_id IN ($ids) AND state = 'succeeded'", '12', 240),
		'all twelve cleanups succeed') or show($ids);
	return $ids;
};
emulator_control($emu, 'POST', '/config', { page_size => 5 });
emulator_control($emu, 'DELETE', '/requests');
$cleanup_of->();
my $reqs = emulator_requests($emu);
my ($first_post) = grep { $reqs->[$_]{method} eq 'POST' } 0 .. $#$reqs;
my @before = @$reqs[0 .. $first_post - 1];
is(item_gets(\@before), 0, 'no item is read on its own before the wave is sent');
ok(item_lists($reqs) >= 3, 'the vault item list (three pages) answers for all twelve');
ok(item_gets($reqs) < 12, 'after the jobs, items are re-read mostly from listings too ('
	  . item_gets($reqs) . ' single GETs)');
is(q1("SELECT count(*) FROM asr_items WHERE properties #>> '{testFailoverState}' = 'None'"), '12',
	'every item was re-read after its job (test failover state None, not the WaitingForCompletion read before)');

# the listing fails: one GET per item instead, the jobs go on
$jobs = q1("SELECT string_agg(asr_test_failover(name, 'latest')::text, ',') FROM asr_items");
ok(wait_for_query($node,
		"SELECT count(*) FROM asr_jobs WHERE job_id IN ($jobs) AND state = 'succeeded'", '12', 240),
	'twelve more test failovers succeed') or show($jobs);
emulator_control($emu, 'POST', '/faults',
	{ action => 'status', status => 404, count => 1,
	  match => { method => 'GET', path => 'replicationProtectedItems$' } });
emulator_control($emu, 'DELETE', '/requests');
$cleanup_of->();
$reqs = emulator_requests($emu);
ok(item_gets($reqs) >= 12, 'with the listing refused, each item is read on its own ('
	  . item_gets($reqs) . ' single GETs)');
emulator_control($emu, 'POST', '/config', { page_size => 1000 });

# Reconciling in a wave: ARM answers 500 to every test failover POST after
# ASR has acted (the outcome is unknown to the worker).  Each job must look
# for itself in the vault's job list before anything is sent again -- all
# twelve in one listing, not one listing each (the list is slowed down so
# that twelve separate listings would all be under way at once; five jobs
# a page, so that the jobs are found on different pages).
emulator_control($emu, 'POST', '/config', { page_size => 5 });
emulator_control($emu, 'DELETE', '/requests');
emulator_control($emu, 'POST', '/faults',
	{ action => 'status', status => 500, after => JSON::PP::true, count => 12,
	  match => { method => 'POST', path => 'testFailover$' } });
my $slow_list = emulator_control($emu, 'POST', '/faults',
	{ action => 'delay', delay_ms => 1500, count => undef,
	  match => { method => 'GET', path => 'replicationJobs$' } })->{id};
$jobs = q1("SELECT string_agg(asr_test_failover(name, 'latest')::text, ',') FROM asr_items");
# While the listing's pages come in, the DBA reloads the configuration
# again and again: the worker then reads its vault row again for the next
# page, from the page's completion (which runs outside any transaction:
# such a read without one crashed the worker, and with it the whole
# cluster, before 2026-11-27; AsrTest fails the file on any crash).
my $found_sql = "SELECT count(*) FROM asr_job_events WHERE job_id IN ($jobs) AND detail LIKE 'found ASR job %'";
ok(wait_for_query($node, "SELECT count(*) > 0 FROM asr_jobs WHERE job_id IN ($jobs) "
		. "AND last_error LIKE 'request outcome unknown%'", 't', 60),
	'the POSTs answered 500: the jobs wait to reconcile') or show($jobs);
my $reloads = 0;
my $reload_until = time() + 150;
while (time() < $reload_until && q1($found_sql) < 12)
{
	q1('SELECT pg_reload_conf()');
	$reloads++;
	usleep(300_000);
}
note("$reloads reloads while the jobs reconciled");
ok(wait_for_query($node,
		"SELECT count(*) FROM asr_jobs WHERE job_id IN ($jobs) AND state = 'succeeded'", '12', 240),
	'after a 500 on every POST, the twelve test failovers succeed') or show($jobs);
emulator_control($emu, 'DELETE', "/faults/$slow_list");
$reqs = emulator_requests($emu);
my @tf_posts = grep { $_->{method} eq 'POST' && $_->{path} =~ /testFailover$/ } @$reqs;
is(scalar @tf_posts, 12, 'twelve POSTs, none sent again');
is(scalar(grep { ($_->{status} // '') eq '500' && ($_->{executed} // 0) == 202 } @tf_posts), 12,
	'each answered 500 after ASR ran it');
is(q1("SELECT count(DISTINCT job_id) FROM asr_job_events WHERE job_id IN ($jobs) "
		. "AND detail LIKE 'found ASR job % in the vault''s job list; not sent again'"), '12',
	'each job found its ASR job in the vault\'s job list (pages of five: on different pages)');
my $first_found = q1("SELECT extract(epoch FROM min(at)) FROM asr_job_events WHERE job_id IN ($jobs) "
	  . "AND detail LIKE 'found ASR job %'");
my @lists_before = grep {
	$_->{method} eq 'GET' && $_->{path} =~ m{/replicationJobs$}
	  && ($_->{query_string} // '') !~ /skipToken/i && $_->{time} < $first_found
} @$reqs;
ok(@lists_before >= 1 && @lists_before <= 2,
	'the twelve looked for themselves in one listing of the vault\'s job list ('
	  . scalar(@lists_before) . ' listings begun before the first was found)');
emulator_control($emu, 'POST', '/config', { page_size => 1000 });
$cleanup_of->();

# a tiny read budget: ARM throttles, the worker paces itself
emulator_control($emu, 'POST', '/throttle', { reads => [ 4, 2 ] });
emulator_control($emu, 'DELETE', '/requests');
$jobs = q1("SELECT string_agg(asr_test_failover(name, 'latest')::text, ',') FROM asr_items");
ok(wait_for_query($node,
		"SELECT throttled_until IS NOT NULL OR last_error LIKE '%429%' FROM asr_worker_status", 't', 120),
	'asr_worker_status shows the throttling');
ok(wait_for_query($node,
		"SELECT count(*) FROM asr_jobs WHERE job_id IN ($jobs) AND state = 'succeeded'", '12', 120),
	'throttled, every job still succeeds') or show($jobs);
ok(scalar(grep { ($_->{status} // '') eq '429' } @{ emulator_requests($emu) }), 'ARM did answer 429');
is(q1("SELECT count(*) FROM asr_jobs WHERE state = 'failed'"), '0', 'no job failed');
$node->stop('fast');
done_testing();

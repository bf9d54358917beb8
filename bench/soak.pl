# soak.pl: randomized faults for a long time across hundreds of jobs (run
# by bench/soak, not part of "make test").
#
# N replicated VMs (ASR_SOAK_VMS, default 60) each cycle through test
# failover -> cleanup -> test failover ... for ASR_SOAK_SECONDS (default
# 3600) while a fault injector, every few seconds, picks one of: a 429
# storm, 5xx answers, dropped connections (before and after the request
# ran: the lost 202), slow bodies, slow answers, kill -9 of the worker, an
# immediate restart of PostgreSQL.  Then the faults stop and the checks:
# every job is terminal or visibly running with a next poll time, no
# action was accepted twice by the emulator (request log, by client
# request id), no job was lost (every job queued is in asr_jobs), and the
# worker's memory is flat.  Figures go to stdout and $ASR_SOAK_OUT.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use JSON::PP;
use File::Basename qw(dirname);
use Time::HiRes qw(time sleep);

my $seconds = $ENV{ASR_SOAK_SECONDS} // 3600;
my $nvms = $ENV{ASR_SOAK_VMS} // 60;
my $max_jobs = $ENV{ASR_SOAK_JOBS} // 1_000_000;
my $seed = $ENV{ASR_SOAK_SEED} // time();
my $outfile = $ENV{ASR_SOAK_OUT};
srand($seed);
diag("soak: ${seconds}s, $nvms VMs, seed $seed");

# The default world with its VMs replaced by N single-disk copies.
my $top = $ENV{ASR_TOP} // dirname(__FILE__) . '/..';
my $world = decode_json(slurp_file("$top/test/emulator/worlds/default.json"));
my $vault = $world->{subscriptions}[0]{vaults}[0];
my ($tmpl) = grep { @{ $_->{disks} } == 1 } @{ $vault->{vms} };
my @vms;
for my $i (1 .. $nvms)
{
	my $vm = decode_json(encode_json($tmpl));
	$vm->{name} = sprintf('soak-vm-%04d', $i);
	$vm->{item_name} = sprintf('%08x-0000-4000-8000-%012x', $i, $i);
	$vm->{disks}[0]{name} = sprintf('soak-vm-%04d_OsDisk_1', $i);
	push @vms, $vm;
}
$vault->{vms} = \@vms;
$_->{recovery_point_history_minutes} = 60 for @{ $vault->{policies} };
my $wdir = PostgreSQL::Test::Utils::tempdir('world');
open(my $wf, '>', "$wdir/world.json") or die;
print $wf encode_json($world);
close($wf);

my $emu = start_emulator(args => ['--world', "$wdir/world.json", '--time-scale', '600',
		'--retry-after', '1']);
my $node = asr_node('soak', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 5s\n"
	  . "asr.sync_interval = 3600s\nasr.poll_interval = 2s\nlog_min_messages = warning\n"
	  . "log_statement = none\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);
$node->safe_psql('postgres', "SELECT asr_sync('dr', '300 s')", timeout => 600);
is($node->safe_psql('postgres', "SELECT count(*) FROM asr_items WHERE name LIKE 'soak-vm-%'"),
	$nvms, "the vault's $nvms VMs are known");

sub q1
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, timeout => 120);
	return $ret == 0 ? $out : undef;
}

sub rss_kb
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/status") or return undef;
	while (<$fh>)
	{
		return $1 if /^RssAnon:\s+(\d+)/;
	}
	return undef;
}

my @faults = (
	[ '429 storm', sub { { action => 'status', status => 429, retry_after => 1, count => 20 + int(rand(40)) } } ],
	[ '5xx', sub { { action => 'status', status => (500, 502, 503, 504)[int(rand(4))], count => 5 + int(rand(20)) } } ],
	[ 'drop', sub { { action => 'drop', count => 1 + int(rand(5)) } } ],
	[ 'drop after (lost answer)', sub { { action => 'drop', after => JSON::PP::true, count => 1 + int(rand(3)) } } ],
	[ 'slow body', sub { { action => 'slow_body', chunk_bytes => 64, chunk_delay_ms => 100 + int(rand(400)), count => 3 } } ],
	[ 'slow answer', sub { { action => 'delay', delay_ms => 1000 + int(rand(6000)), count => 3 } } ],
	[ 'kill -9 worker', undef ],
	[ 'immediate restart', undef ],
);
my %fault_count;
my $queued = 0;
my %last;		# vm -> job id
my @rss;		# [time, pid, kb]
my $t0 = time();
my $next_fault = $t0 + 5;
my $next_rss = $t0;

while (time() - $t0 < $seconds)
{
	# queue the next step for every VM whose last job ended
	if ($queued < $max_jobs)
	{
		my $rows = q1(q{
			SELECT i.name, coalesce(j.action, ''), coalesce(j.state, 'none')
			  FROM asr_items i
			  LEFT JOIN LATERAL (SELECT action, state FROM asr_jobs
			                      WHERE item_id = i.item_id ORDER BY job_id DESC LIMIT 1) j ON true
			 WHERE i.name LIKE 'soak-vm-%'
			   AND coalesce(j.state, 'none') IN ('none', 'succeeded', 'failed', 'cancelled')});
		for my $line (split /\n/, $rows // '')
		{
			my ($vm, $action, $state) = split /\|/, $line;
			my $sql = ($action eq 'test_failover' && $state eq 'succeeded')
			  ? "SELECT asr_test_failover_cleanup('$vm')"
			  : "SELECT asr_test_failover('$vm', 'latest')";
			my $job = q1($sql);
			if (defined $job && $job =~ /^\d+$/)
			{
				$queued++;
				$last{$vm} = $job;
			}
			last if $queued >= $max_jobs;
		}
	}

	if (time() >= $next_fault)
	{
		my ($name, $make) = @{ $faults[ int(rand(@faults)) ] };
		# drastic ones rarely
		($name, $make) = @{ $faults[ int(rand(6)) ] }
		  if !$make && rand() < 0.6;
		$fault_count{$name}++;
		if ($make)
		{
			my $rule = $make->();
			my @m = (
				{ listener => 'arm', method => 'GET' },
				{ listener => 'arm', method => 'POST' },
				{ listener => 'arm' },
				{ listener => 'login' });
			$rule->{match} = $m[ int(rand(@m)) ];
			eval { emulator_control($emu, 'POST', '/faults', $rule) };
		}
		elsif ($name eq 'kill -9 worker')
		{
			my $pid = eval { worker_pid($node) };
			kill 'KILL', $pid if $pid;
		}
		else
		{
			$node->stop('immediate');
			$node->start;
		}
		$next_fault = time() + 2 + rand(6);
	}
	if (time() >= $next_rss)
	{
		my $pid = eval { worker_pid($node) };
		my $kb = $pid ? rss_kb($pid) : undef;
		push @rss, [ time() - $t0, $pid, $kb ] if $kb;
		diag(sprintf('t=%4ds worker %s RssAnon %s kB, jobs queued %d', time() - $t0,
				$pid // '-', $kb // '-', $queued));
		$next_rss = time() + 10;
	}
	sleep 1;
}

# faults off; let everything finish
eval { emulator_control($emu, 'DELETE', '/faults') };
my $settled = wait_for_query($node,
	"SELECT count(*) FROM asr_jobs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')",
	'0', 600);
my $pid = worker_pid($node);
push @rss, [ time() - $t0, $pid, rss_kb($pid) ] if $pid && rss_kb($pid);

my $total = q1('SELECT count(*) FROM asr_jobs');
my $states = q1("SELECT string_agg(state || '=' || n, ' ' ORDER BY state) FROM
	(SELECT state, count(*) n FROM asr_jobs GROUP BY state) s");
is($total, $queued, "every job queued is in asr_jobs ($queued)");
is(q1(q{SELECT count(*) FROM asr_jobs
	 WHERE state NOT IN ('succeeded', 'failed', 'cancelled')
	   AND NOT (state IN ('running', 'submitting', 'queued') AND next_poll_at IS NOT NULL)}),
	'0', 'every job is terminal or running with a next poll time');
ok($settled, 'every job reached a terminal state once the faults stopped');

# no action accepted twice: accepted POSTs per client request id
my %accepted;
for my $r (@{ emulator_requests($emu, method => 'POST',
			path => '(testFailover|testFailoverCleanup)$') })
{
	next unless ($r->{status} // '') =~ /^(200|202|dropped-after)$/;
	$accepted{ $r->{client_request_id} // '' }++;
}
my @dups = grep { $accepted{$_} > 1 } keys %accepted;
is(scalar @dups, 0, 'no action POST was accepted twice') or diag("duplicates: @dups");
my %job_crid = map { split /\|/ } split /\n/,
  (q1(q{SELECT client_request_id, job_id FROM asr_jobs WHERE state = 'succeeded'}) // '');
my @unsent = grep { !$accepted{$_} } keys %job_crid;
is(scalar @unsent, 0, 'every succeeded job was accepted by Azure exactly through its own POST');

# memory: the RSS of the last worker process, first and last sample
my $lastpid = $rss[-1][1];
my @mine = grep { $_->[1] == $lastpid } @rss;
my ($rss_start, $rss_end) = ($mine[0][2], $mine[-1][2]);
# the level after warm-up (a restarted worker reloads every job and reads
# the vault's job list first): the sample halfway through its life
my $rss_mid = $mine[ int($#mine / 2) ][2];
my @all_kb = map { $_->[2] } @rss;
my ($rss_min, $rss_max) = (sort { $a <=> $b } @all_kb)[ 0, -1 ];
cmp_ok($rss_end, '<=', $rss_mid * 1.25 + 16384,
	"worker memory is flat (started at $rss_start kB, $rss_mid kB halfway, $rss_end kB at the end)");

my %fig = (
	duration_s => int(time() - $t0), fault_phase_s => $seconds, vms => $nvms, seed => $seed,
	jobs => $queued, states => $states, faults => \%fault_count,
	duplicate_posts => scalar @dups, lost_jobs => $queued - $total,
	worker_rss_kb => { last_worker_first => $rss_start, last_worker_halfway => $rss_mid,
		last_worker_end => $rss_end,
		min => $rss_min, max => $rss_max, samples => scalar @rss,
		last_worker_samples => scalar @mine },
	rss_measure => 'RssAnon of the asr worker (kB), sampled every 10 s');
my $json = JSON::PP->new->canonical->pretty->encode(\%fig);
diag($json);
if ($outfile)
{
	open(my $of, '>', $outfile) or die "$outfile: $!";
	print $of $json;
	close($of);
}
$node->stop('fast');
done_testing();

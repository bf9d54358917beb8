# soak.pl: randomized faults for a long time across hundreds of jobs (run
# by bench/soak, not part of "make test").
#
# N replicated VMs (ASR_SOAK_VMS, default 60) each cycle through test
# failover -> cleanup -> test failover ... for ASR_SOAK_SECONDS (default
# 3600) while a fault injector, every few seconds, picks one of: a 429
# storm, 5xx answers, dropped connections (before and after the request
# ran: the lost 202), a 5xx answered after an action POST ran (ASR acted,
# ARM said 500), slow bodies, slow answers, kill -9 of the worker, an
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

my %queue_errors;	# normalized error -> count

sub q1
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, timeout => 120);
	return $out if $ret == 0;
	# a server in crash recovery refuses connections: count, show a few
	(my $e = $err // '') =~ s/\d+/N/g;
	$e =~ s/\s+/ /g;
	diag("psql: $err") if $queue_errors{$e}++ < 3;
	return undef;
}

# RssAnon and VmHWM (kB) of a process
sub proc_mem
{
	my ($pid) = @_;
	my %m;
	open(my $fh, '<', "/proc/$pid/status") or return;
	while (<$fh>)
	{
		$m{$1} = $2 if /^(RssAnon|VmHWM):\s+(\d+)/;
	}
	return $m{RssAnon} ? ($m{RssAnon}, $m{VmHWM}) : ();
}

# The worker's memory contexts: pg_log_backend_memory_contexts() makes it
# write them to the server log at its next CHECK_FOR_INTERRUPTS(); the
# "Grand total" lines are read from the log as they appear.
my $log_offset = 0;
my %ctx_of;		# pid -> [[log time, total bytes, used bytes, top contexts], ...]
my %ctx_lines;	# pid -> [[bytes, "level: name"], ...] of the dump being read

sub read_context_totals
{
	open(my $fh, '<', $node->logfile) or return;
	seek($fh, $log_offset, 0);
	while (my $line = <$fh>)
	{
		last unless $line =~ /\n$/;	# half-written: next time
		$log_offset = tell($fh);
		if ($line =~ /\[(\d+)\] LOG:  level: (\d+); (.*?): (\d+) total in/)
		{
			push @{ $ctx_lines{$1} }, [ $4, "$2: $3" ];
		}
		elsif ($line =~ /(\d\d:\d\d:\d\d)\.\d+ \w+ \[(\d+)\] LOG:  Grand total: (\d+) bytes in \d+ blocks; (\d+) free \(\d+ chunks\); (\d+) used/)
		{
			my @top = (sort { $b->[0] <=> $a->[0] } @{ delete $ctx_lines{$2} // [] })[ 0 .. 5 ];
			push @{ $ctx_of{$2} }, [ $1, $3, $5,
				join('; ', map { sprintf('%s %d kB', $_->[1], $_->[0] / 1024) } grep { defined } @top) ];
		}
	}
	return;
}

my $action_path = '(testFailover|testFailoverCleanup)$';
my @faults = (
	[ '429 storm', sub { { action => 'status', status => 429, retry_after => 1, count => 20 + int(rand(40)) } } ],
	[ '5xx', sub { { action => 'status', status => (500, 502, 503, 504)[int(rand(4))], count => 5 + int(rand(20)) } } ],
	[ 'drop', sub { { action => 'drop', count => 1 + int(rand(5)) } } ],
	[ 'drop after (lost answer)', sub { { action => 'drop', after => JSON::PP::true, count => 1 + int(rand(3)) } } ],
	# ARM answers 500/502 although ASR acted: the worker must reconcile
	# (find the job in the vault's list), never send the action again
	[ '5xx after (action ran)', sub { { action => 'status', status => (500, 502)[int(rand(2))], after => JSON::PP::true,
		count => 1 + int(rand(5)), match => { listener => 'arm', method => 'POST', path => $action_path } } } ],
	[ 'slow body', sub { { action => 'slow_body', chunk_bytes => 64, chunk_delay_ms => 100 + int(rand(400)), count => 3 } } ],
	[ 'slow answer', sub { { action => 'delay', delay_ms => 1000 + int(rand(6000)), count => 3 } } ],
	[ 'kill -9 worker', undef ],
	[ 'immediate restart', undef ],
);
my %fault_count;
my %fault_fired;	# kind -> answers the rules changed
my @live_faults;	# [rule id, expires at, kind, count]
my %status_fault;	# ids of the fault rules that force a status before executing
my $mild = grep { defined $_->[1] } @faults;	# the faults that are rules

# Remove the fault rules whose time is up (all with $all), counting how
# many answers each changed.
sub expire_faults
{
	my ($all) = @_;
	my $list = eval { emulator_control($emu, 'GET', '/faults') };
	my %fired = map { $_->{id} => $_->{fired} // 0 } @{ ref $list eq 'HASH' ? $list->{faults} // [] : $list // [] };
	my @keep;
	for my $f (@live_faults)
	{
		if ($all || $f->[1] <= time())
		{
			# a rule whose count ran out is gone from the list: all fired
			$fault_fired{ $f->[2] } += exists $fired{ $f->[0] } ? $fired{ $f->[0] } : $f->[3];
			eval { emulator_control($emu, 'DELETE', "/faults/$f->[0]") } unless $all;
		}
		else
		{
			push @keep, $f;
		}
	}
	@live_faults = @keep;
	return;
}
my $queued = 0;
my $not_queued = 0;	# a VM with nothing allowed, or a call refused
my %last;		# vm -> job id
my @samples;	# {t, pid, age, rss, hwm, active, handled, ctx_total, ctx_used, phase}
my %ctx_pending;	# pid -> the sample whose contexts it was asked to log
my $t0 = time();
my $next_fault = $t0 + 5;
my $next_sample = $t0;

# One memory sample: the worker's pid and age, RssAnon and VmHWM, how many
# jobs are active (not terminal) and handled (terminal) right now, and a
# request for its memory contexts (their totals arrive in the server log
# and are attached to this sample when read).
sub sample
{
	my ($phase) = @_;
	read_context_totals();
	for my $pid (keys %ctx_of)
	{
		while (my $c = shift @{ $ctx_of{$pid} })
		{
			my $s = delete $ctx_pending{$pid} or next;
			@$s{qw(ctx_total ctx_used ctx_top)} = (int($c->[1] / 1024), int($c->[2] / 1024), $c->[3]);
		}
	}
	my $row = q1(q{SELECT coalesce(w.pid, 0), coalesce(extract(epoch FROM now() - w.backend_start)::int, 0),
			count(*) FILTER (WHERE j.state NOT IN ('succeeded', 'failed', 'cancelled')),
			count(*) FILTER (WHERE j.state IN ('succeeded', 'failed', 'cancelled'))
		  FROM asr_jobs j
		  LEFT JOIN (SELECT pid, backend_start FROM pg_stat_activity
		              WHERE backend_type = 'asr worker') w ON true
		 GROUP BY w.pid, w.backend_start});
	return unless defined $row && $row ne '';
	my ($pid, $age, $active, $handled) = split /\|/, (split /\n/, $row)[0];
	my ($rss, $hwm) = $pid ? proc_mem($pid) : ();
	my $s = { t => int(time() - $t0), pid => $pid, age => $age, rss => $rss, hwm => $hwm,
		active => $active, handled => $handled, phase => $phase };
	push @samples, $s;
	if ($rss && defined q1("SELECT pg_log_backend_memory_contexts($pid)"))
	{
		$ctx_pending{$pid} = $s;
	}
	diag(sprintf('t=%4ds worker %s (age %ss) RssAnon %s kB, VmHWM %s kB, jobs active %d handled %d queued %d',
			$s->{t}, $pid || '-', $age, $rss // '-', $hwm // '-', $active, $handled, $queued));
	return;
}

while (time() - $t0 < $seconds)
{
	# queue the next step for every VM whose last job ended: what Azure
	# allows on it now (asr_items, re-read by the worker at every job's
	# end), as a DBA would; a test failover whose job failed but ran in
	# Azure is cleaned up instead of being refused forever
	if ($queued < $max_jobs)
	{
		my $rows = q1(q{
			SELECT i.name,
			       CASE WHEN 'TestFailoverCleanup' = ANY (i.allowed_operations) THEN 'cleanup'
			            WHEN 'TestFailover' = ANY (i.allowed_operations) THEN 'test'
			            ELSE '' END
			  FROM asr_items i
			  LEFT JOIN LATERAL (SELECT state FROM asr_jobs
			                      WHERE item_id = i.item_id ORDER BY job_id DESC LIMIT 1) j ON true
			 WHERE i.name LIKE 'soak-vm-%'
			   AND coalesce(j.state, 'none') IN ('none', 'succeeded', 'failed', 'cancelled')});
		for my $line (split /\n/, $rows // '')
		{
			my ($vm, $next) = split /\|/, $line;
			if (!$next)
			{
				$not_queued++;
				next;
			}
			my $sql = $next eq 'cleanup'
			  ? "SELECT asr_test_failover_cleanup('$vm')"
			  : "SELECT asr_test_failover('$vm', 'latest')";
			my $job = q1($sql);
			if (defined $job && $job =~ /^\d+$/)
			{
				$queued++;
				$last{$vm} = $job;
			}
			else
			{
				$not_queued++;
			}
			last if $queued >= $max_jobs;
		}
	}

	if (time() >= $next_fault)
	{
		my ($name, $make) = @{ $faults[ int(rand(@faults)) ] };
		# drastic ones rarely
		($name, $make) = @{ $faults[ int(rand($mild)) ] }
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
			$rule->{match} //= $m[ int(rand(@m)) ];
			my $added = eval { emulator_control($emu, 'POST', '/faults', $rule) };
			# a storm lasts a while, like Azure's: the rule goes after
			# 3-15 s even if its count is not used up (a count alone on
			# the login listener, which sees a request only when a token
			# is due, would keep it failing for many minutes)
			push @live_faults, [ $added->{id}, time() + 3 + rand(12), $name, $rule->{count} ]
			  if $added && defined $added->{id};
			# a forced status answers instead of running the request
			# (unless after: then it runs first)
			$status_fault{ $added->{id} } = 1
			  if $added && defined $added->{id} && ($rule->{action} // '') eq 'status' && !$rule->{after};
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
	expire_faults(0) if grep { $_->[1] <= time() } @live_faults;
	if (time() >= $next_sample)
	{
		sample('faults');
		$next_sample = time() + 10;
	}
	sleep 1;
}

# the end of the fault phase: every job is terminal, queued, or visibly
# running (submitting, running, suspended) with a next poll time
my $at_end = q1(q{SELECT count(*) FILTER (WHERE state IN ('succeeded', 'failed', 'cancelled')),
		count(*) FILTER (WHERE state = 'queued'),
		count(*) FILTER (WHERE state IN ('submitting', 'running', 'suspended') AND next_poll_at IS NOT NULL),
		count(*) FILTER (WHERE state IN ('submitting', 'running', 'suspended') AND next_poll_at IS NULL)
	  FROM asr_jobs}) // '|||';
my %end_of_faults;
@end_of_faults{qw(terminal queued running_with_next_poll running_without_next_poll)} = split /\|/, $at_end;
diag("end of the fault phase: $at_end (terminal|queued|running with next poll|running without)");

# faults off; let everything finish (sampling on)
expire_faults(1);
eval { emulator_control($emu, 'DELETE', '/faults') };
my $drain_deadline = time() + 600;
my $settled = 0;
while (time() < $drain_deadline)
{
	my $left = q1("SELECT count(*) FROM asr_jobs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')");
	if (defined $left && $left eq '0')
	{
		$settled = 1;
		last;
	}
	if (time() >= $next_sample)
	{
		sample('drain');
		$next_sample = time() + 10;
	}
	sleep 1;
}
# two more samples of the idle worker, so that its contexts are read too
for (1 .. 2)
{
	sample('idle');
	sleep 5;
}
my $drain_s = int(time() - $t0 - $seconds);

my $total = q1('SELECT count(*) FROM asr_jobs');
my $states = q1("SELECT string_agg(state || '=' || n, ' ' ORDER BY state) FROM
	(SELECT state, count(*) n FROM asr_jobs GROUP BY state) s");
is($total, $queued, "every job queued is in asr_jobs ($queued)");
is($end_of_faults{running_without_next_poll}, '0',
	"when the faults stopped every job was terminal ($end_of_faults{terminal}), queued ($end_of_faults{queued}) or running with a next poll time ($end_of_faults{running_with_next_poll})");
is(q1(q{SELECT count(*) FROM asr_jobs
	 WHERE state NOT IN ('succeeded', 'failed', 'cancelled')
	   AND NOT (state IN ('running', 'submitting', 'queued') AND next_poll_at IS NOT NULL)}),
	'0', 'every job is terminal or running with a next poll time');
ok($settled, "every job reached a terminal state once the faults stopped (in ${drain_s}s)");

# no action accepted twice: accepted POSTs per client request id.  A POST
# was accepted when carrying it out answered 2xx (the log's "executed"),
# whatever the client was answered (a 202 dropped, a 500 after ASR acted).
# An emulator without "executed": answered 200/202, or dropped after
# running, unless a forced status also fired (then it never ran).
my %accepted;
my @resent;	# client request ids POSTed again after an accepted POST
# The emulator keeps its last 100,000 requests in memory (an hour of this
# soak can pass that) but appends every one to requests.jsonl: read that.
sub action_posts
{
	my $file = "$emu->{dir}/requests.jsonl";
	open(my $fh, '<', $file)
	  or return emulator_requests($emu, method => 'POST', path => $action_path);
	my @out;
	while (my $line = <$fh>)
	{
		next unless $line =~ /testFailover/i;
		my $r = eval { decode_json($line) } or next;
		push @out, $r if ($r->{method} // '') eq 'POST' && ($r->{path} // '') =~ /$action_path/i;
	}
	close($fh);
	return \@out;
}
my $post_log = action_posts();
for my $r (sort { $a->{seq} <=> $b->{seq} } @$post_log)
{
	my $crid = $r->{client_request_id} // '';
	push @resent, $crid if $accepted{$crid};
	my $ran;
	if (exists $r->{executed})
	{
		$ran = ($r->{executed} // '') =~ /^(200|201|202)$/;
	}
	else
	{
		$ran = ($r->{status} // '') =~ /^(200|202|dropped-after)$/
		  && !(($r->{status} // '') eq 'dropped-after'
			&& grep { $status_fault{$_} } @{ $r->{faults} // [] });
	}
	$accepted{$crid}++ if $ran;
}
my @dups = grep { $accepted{$_} > 1 } keys %accepted;
is(scalar @dups, 0, 'no action POST was accepted twice') or diag("duplicates: @dups");
# a re-sent action is refused by ASR once the first one ran (400: not
# allowed in the item's state), so it is never accepted twice: the
# worker must have reconciled and found the job instead of sending again
my %resent = map { $_ => 1 } @resent;
is(scalar keys %resent, 0, 'no action POST was sent again after Azure had accepted it')
  or diag('re-sent: ' . join(' ', grep { defined } (sort keys %resent)[ 0 .. 4 ]));
my $accepted_after_5xx = grep { ($_->{executed} // '') =~ /^20[012]$/ && ($_->{status} // '') =~ /^5\d\d$/ } @$post_log;
diag("action POSTs answered 5xx after ASR acted: $accepted_after_5xx");
my %job_crid = map { split /\|/ } split /\n/,
  (q1(q{SELECT client_request_id, job_id FROM asr_jobs WHERE state = 'succeeded'}) // '');
my @unsent = grep { !$accepted{$_} } keys %job_crid;
is(scalar @unsent, 0, 'every succeeded job was accepted by Azure exactly through its own POST');

# a job whose action Azure accepted must not end 'failed': a timeout or a
# dropped connection never fails a job by itself (DESIGN.md section 7)
my %failed_codes;
my @failed_but_ran;
for my $line (split /\n/, (q1(q{SELECT job_id, client_request_id, coalesce(error_code, '-') FROM asr_jobs
		WHERE state = 'failed' ORDER BY job_id}) // ''))
{
	my ($job, $crid, $code) = split /\|/, $line;
	$failed_codes{$code}++;
	push @failed_but_ran, $job if $accepted{$crid};
}
my @shown = @failed_but_ran > 5 ? @failed_but_ran[ 0 .. 4 ] : @failed_but_ran;
is(scalar @failed_but_ran, 0, 'no job failed whose action Azure accepted')
  or diag("failed though Azure ran them: jobs @failed_but_ran\n"
	  . (q1("SELECT string_agg(job_id || ' ' || action || ': ' || error_message, E'\\n')
		  FROM asr_jobs WHERE job_id IN (" . join(',', @shown) . ')') // ''));

# worker starts: the server log says each one
my $starts = () = slurp_file($node->logfile) =~ /asr worker started/g;

# Memory.  A restarted worker reloads every open job and reads the vault's
# job list at once, and malloc keeps what it freed, so one worker's RssAnon
# is a plateau set by its warm-up; comparing one worker's first and last
# samples says nothing.  Judged instead, at comparable load points (the
# fault phase, worker older than its warm-up, active jobs near the median):
#  - the steady RssAnon of every window (10 minutes in an hour-long run)
#    must not grow: the lowest steady sample of the last window is within
#    1.5x + 32 MB of the first window's;
#  - the memory in the worker's contexts (what it holds, freed or not by
#    malloc) must not grow the same way: median per window, last within
#    1.5x + 8 MB of the first;
#  - reported: the high-water marks (largest RssAnon sample, largest VmHWM),
#    the slope of RssAnon and of the contexts over time across restarts
#    (MB per hour) and within each worker's life (kB per 1,000 jobs
#    handled, the workers pooled), per window figures, every sample.
my $warmup = 30;
my @faulty = grep { $_->{phase} eq 'faults' && $_->{rss} } @samples;
my @act = sort { $a <=> $b } map { $_->{active} } @faulty;
my $act_median = @act ? $act[ int($#act / 2) ] : 0;
my @steady = grep { $_->{age} >= $warmup && abs($_->{active} - $act_median) <= 0.25 * $act_median + 1 } @faulty;

sub median
{
	my @v = sort { $a <=> $b } @_;
	return @v ? $v[ int($#v / 2) ] : undef;
}

sub maxof { my $m; for (@_) { $m = $_ if !defined $m || $_ > $m } return $m; }
sub minof { my $m; for (@_) { $m = $_ if !defined $m || $_ < $m } return $m; }

# least squares slope of y on x; within => demean per worker first.  Only
# groups of 3 points or more spanning at least $span in x count, and the
# answer is undef below 10 points (a handful of samples gives no trend).
sub slope
{
	my ($pts, $within, $span) = @_;	# [[group, x, y], ...]
	my %g;
	push @{ $g{ $within ? $_->[0] : 0 } }, $_ for @$pts;
	my ($sxy, $sxx, $n) = (0, 0, 0);
	for my $grp (values %g)
	{
		next if @$grp < 3;
		my @xs = map { $_->[1] } @$grp;
		next if maxof(@xs) - minof(@xs) < $span;
		my $mx = 0; my $my = 0;
		$mx += $_->[1] / @$grp for @$grp;
		$my += $_->[2] / @$grp for @$grp;
		for (@$grp)
		{
			$sxy += ($_->[1] - $mx) * ($_->[2] - $my);
			$sxx += ($_->[1] - $mx)**2;
			$n++;
		}
	}
	return ($sxx > 0 && $n >= 10) ? ($sxy / $sxx, $n) : (undef, $n);
}

sub r1 { return defined $_[0] ? 0 + sprintf('%.1f', $_[0]) : undef; }

my $win = $seconds >= 3600 ? 600 : ($seconds >= 360 ? int($seconds / 6) : 60);
my @windows;
for (my $w = 0; $w * $win < $seconds; $w++)
{
	my ($from, $to) = ($w * $win, ($w + 1) * $win);
	my @in = grep { $_->{t} >= $from && $_->{t} < $to } @faulty;
	my @st = grep { $_->{t} >= $from && $_->{t} < $to } @steady;
	my %pids = map { $_->{pid} => 1 } @in;
	my @ctx = map { $_->{ctx_used} } grep { defined $_->{ctx_used} } @st;
	push @windows, {
		from_s => $from, to_s => $to, samples => scalar @in, steady_samples => scalar @st,
		workers => scalar keys %pids,
		jobs_handled => @in ? $in[-1]{handled} - $in[0]{handled} : 0,
		rss_kb_min => minof(map { $_->{rss} } @in), rss_kb_max => maxof(map { $_->{rss} } @in),
		steady_rss_kb_min => minof(map { $_->{rss} } @st),
		steady_rss_kb_median => median(map { $_->{rss} } @st),
		steady_ctx_used_kb_median => median(@ctx), ctx_used_kb_max => maxof(map { $_->{ctx_used} // () } @in) };
}
my @judged = grep { $_->{steady_samples} } @windows;
my ($wfirst, $wlast) = @judged[ 0, -1 ];
my @judged_ctx = grep { defined $_->{steady_ctx_used_kb_median} } @windows;
my ($cfirst, $clast) = @judged_ctx[ 0, -1 ];

my @rss_t = map { [ $_->{pid}, $_->{t} / 3600, $_->{rss} / 1024 ] } @steady;
my @rss_j = map { [ $_->{pid}, $_->{handled} / 1000, $_->{rss} ] } @steady;
my @ctx_t = map { [ $_->{pid}, $_->{t} / 3600, $_->{ctx_used} / 1024 ] } grep { defined $_->{ctx_used} } @steady;
my @ctx_j = map { [ $_->{pid}, $_->{handled} / 1000, $_->{ctx_used} ] } grep { defined $_->{ctx_used} } @steady;
my ($rss_mb_h, $rss_t_n) = slope(\@rss_t, 0, 0.25 * $seconds / 3600);
my ($rss_within_kb_1k, $rss_within_n) = slope(\@rss_j, 1, 0.2);
my ($ctx_mb_h, $ctx_t_n) = slope(\@ctx_t, 0, 0.25 * $seconds / 3600);
my ($ctx_within_kb_1k, $ctx_within_n) = slope(\@ctx_j, 1, 0.2);

my @withrss = grep { $_->{rss} } @samples;
my $hw = maxof(map { $_->{rss} } @withrss);
my ($hw_s) = grep { $_->{rss} == $hw } @withrss;
my %mem = (
	first_sample_kb => $withrss[0]{rss},
	last_sample_kb => $withrss[-1]{rss}, last_sample_phase => $withrss[-1]{phase},
	high_water_rss_anon_kb => $hw, high_water_at_s => $hw_s->{t},
	high_water_worker_age_s => $hw_s->{age},
	high_water_vmhwm_kb => maxof(map { $_->{hwm} // () } @withrss),
	ctx_used_kb_max => maxof(map { $_->{ctx_used} // () } @samples),
	ctx_total_kb_max => maxof(map { $_->{ctx_total} // () } @samples),
	ctx_largest_dump => (map { "t=$_->{t}s pid $_->{pid} age $_->{age}s: $_->{ctx_top}" }
		  sort { $b->{ctx_total} <=> $a->{ctx_total} } grep { defined $_->{ctx_total} } @samples)[0],
	idle_end_ctx_used_kb => (map { $_->{ctx_used} } grep { $_->{phase} eq 'idle' && defined $_->{ctx_used} } @samples)[-1],
	warmup_s => $warmup, active_jobs_median => $act_median,
	samples => scalar @samples, steady_samples => scalar @steady,
	ctx_samples => scalar(grep { defined $_->{ctx_used} } @samples),
	window_s => $win, windows => \@windows,
	steady_rss_slope_mb_per_hour => r1($rss_mb_h),
	steady_rss_within_worker_kb_per_1000_jobs => r1($rss_within_kb_1k),
	steady_rss_within_worker_points => $rss_within_n,
	steady_ctx_slope_mb_per_hour => r1($ctx_mb_h),
	steady_ctx_within_worker_kb_per_1000_jobs => r1($ctx_within_kb_1k),
	steady_ctx_within_worker_points => $ctx_within_n);

SKIP:
{
	skip 'too few steady samples to judge the RSS', 1 unless @judged >= 2;
	cmp_ok($wlast->{steady_rss_kb_min}, '<=', $wfirst->{steady_rss_kb_min} * 1.5 + 32768,
		sprintf('worker RssAnon does not grow at comparable load: lowest steady sample %d kB in the first window (%d-%ds), %d kB in the last (%d-%ds); high-water %d kB',
			$wfirst->{steady_rss_kb_min}, $wfirst->{from_s}, $wfirst->{to_s},
			$wlast->{steady_rss_kb_min}, $wlast->{from_s}, $wlast->{to_s}, $hw));
}
SKIP:
{
	skip 'too few memory-context samples to judge', 1 unless @judged_ctx >= 2;
	cmp_ok($clast->{steady_ctx_used_kb_median}, '<=', $cfirst->{steady_ctx_used_kb_median} * 1.5 + 8192,
		sprintf('memory in the worker\'s contexts does not grow: median %d kB in the first window, %d kB in the last',
			$cfirst->{steady_ctx_used_kb_median}, $clast->{steady_ctx_used_kb_median}));
}

SKIP:
{
	skip 'too few windows to judge the peak', 1 unless @windows >= 2 && $windows[-1]{samples};
	cmp_ok($windows[-1]{rss_kb_max}, '<=', $windows[0]{rss_kb_max} * 1.5 + 65536,
		sprintf('worker peak RssAnon does not grow with the jobs handled: %d kB in the first window, %d kB in the last (a restarted worker reloading its jobs)',
			$windows[0]{rss_kb_max}, $windows[-1]{rss_kb_max}));
}

# what the server log says about the workers' ends
my $serverlog = slurp_file($node->logfile);
my %worker_ends = (
	out_of_memory => scalar(() = $serverlog =~ /\[\d+\] (?:ERROR|FATAL):  out of memory/g),
	killed_by_signal => scalar(() = $serverlog =~ /background worker "asr worker" \(PID \d+\) was terminated by signal/g),
	killed_by_signal_9 => scalar(() = $serverlog =~ /background worker "asr worker" \(PID \d+\) was terminated by signal 9:/g),
	exited_with_error => scalar(() = $serverlog =~ /background worker "asr worker" \(PID \d+\) exited with exit code [1-9]/g));

# A process that died of any other signal (a segmentation fault, an abort)
# crashed, and took the cluster through crash recovery; the soak sends
# kill -9 only.
my @crashes = grep { /terminated by signal (\d+)/ && $1 != 9 } split /\n/, $serverlog;
$worker_ends{crashed} = scalar @crashes;
is(scalar @crashes, 0, 'no process of the cluster died of a signal the soak did not send (kill -9)')
  or diag(join("\n", @crashes[0 .. ($#crashes < 9 ? $#crashes : 9)]));
cmp_ok($worker_ends{killed_by_signal_9}, '<=', $fault_count{'kill -9 worker'} // 0,
	'every worker killed with signal 9 was killed by the soak');

my %fig = (
	worker_ends => \%worker_ends, mem_limit_mb => $ENV{ASR_SOAK_MEM_LIMIT_MB},
	duration_s => int(time() - $t0), fault_phase_s => $seconds, drain_s => $drain_s,
	vms => $nvms, seed => $seed,
	jobs => $queued, states => $states, faults => \%fault_count, fault_answers => \%fault_fired,
	worker_starts => $starts, worker_restarts => $starts - 1,
	end_of_fault_phase => \%end_of_faults,
	duplicate_posts => scalar @dups, resent_after_accepted => scalar keys %resent,
	accepted_then_5xx => $accepted_after_5xx, lost_jobs => $queued - ($total // 0),
	failed_jobs_by_code => \%failed_codes, failed_jobs_azure_ran => scalar @failed_but_ran,
	queue_attempts_refused => $not_queued,
	psql_errors => \%queue_errors,
	worker_memory => \%mem,
	rss_measure => 'RssAnon and VmHWM of the asr worker (kB, /proc/PID/status) and the used bytes of its memory contexts (pg_log_backend_memory_contexts), sampled every 10 s');
my $json = JSON::PP->new->canonical->pretty->encode(\%fig);
diag($json);
if ($outfile)
{
	open(my $of, '>', $outfile) or die "$outfile: $!";
	print $of $json;
	close($of);
	(my $csv = $outfile) =~ s/\.json$/-samples.csv/;
	open(my $cf, '>', $csv) or die "$csv: $!";
	print $cf "t_s,phase,pid,age_s,rss_anon_kb,vmhwm_kb,ctx_total_kb,ctx_used_kb,jobs_active,jobs_handled\n";
	print $cf join(',', map { $_ // '' } @$_{qw(t phase pid age rss hwm ctx_total ctx_used active handled)}) . "\n"
	  for @samples;
	close($cf);
}
$node->stop('fast');
done_testing();

# A page of the vault's item list with documents that are not item
# documents: Azure (the emulator, through a status-200 rule with a body made
# from the real item documents) answers a list where one element has no
# "properties" and one has no "id", among items with fields asr cannot read
# (rpoInSeconds 12.7, a null among allowedOperations) and an intact one.
# The refresh stores every item document of the page, leaves the two out,
# names the first in asr_vaults.sync_error (asr_sync fails with it) and
# forgets no item: the two items whose documents were broken stay as they
# were.  Once Azure answers the real list again, the error is cleared and
# every item is as before.
use strict;
use warnings;
use PostgreSQL::Test::Utils;
use Test::More;
use AsrTest;
use JSON::PP;

# a world with five VMs in the vault
my $world_file = world_with_vms(5, sub { "sync-vm-$_[0]" }, sub { sprintf('syncDocItem%02d', $_[0]) . ('x' x 30) });

my $emu = start_emulator(args => ['--time-scale', '60', '--retry-after', '1', '--world', $world_file]);
my $node = asr_node('syncdocs', conf => "asr.ca_file = '$emu->{ca_file}'\nasr.http_timeout = 10s\nasr.sync_interval = 3600s");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asr');
configure_azure($node, $emu);

sub q1 { return $node->safe_psql('postgres', $_[0]); }

# a fixed RPO, so that two refreshes of an untouched item agree
emulator_control($emu, 'POST', "/items/sync-vm-$_", { rpoInSeconds => 4000 }) for 1 .. 5;
is(q1("SELECT asr_sync('dr', '120 s')"), '5', 'the first refresh reads the five items');

# what asr knows of each item, in the columns read from its document
my $columns = "concat_ws(' | ', name, arm_id, protection_state, protection_state_description, "
  . "active_location, replication_health, test_failover_state, allowed_operations, "
  . "primary_region, recovery_region, rpo_seconds, last_failover_at)";
sub snapshot
{
	return q1("SELECT string_agg($columns, E'\\n' ORDER BY name) FROM asr_items");
}
sub row
{
	my ($vm) = @_;
	return q1("SELECT $columns FROM asr_items WHERE name = '$vm'");
}
my $before = snapshot();
my %row_before = map { ("sync-vm-$_" => row("sync-vm-$_")) } 1 .. 5;
my %arm_id = map { ("sync-vm-$_" => q1("SELECT arm_id FROM asr_items WHERE name = 'sync-vm-$_'")) } 1 .. 5;

# Azure's item documents as the refresh read them: asr keeps the ARM id and
# the whole properties document
my %doc;
for my $vm (map { "sync-vm-$_" } 1 .. 5)
{
	$doc{$vm} = decode_json(q1(
		"SELECT jsonb_build_object('id', arm_id, 'name', regexp_replace(arm_id, '^.*/', ''), "
		  . "'type', 'Microsoft.RecoveryServices/vaults/replicationFabrics/replicationProtectionContainers/replicationProtectedItems', "
		  . "'location', NULL, 'properties', properties) FROM asr_items WHERE name = '$vm'"));
}
my @ops = @{ $doc{'sync-vm-4'}{properties}{allowedOperations} };
die "the emulator's item allows too few operations (@ops) for this test" unless @ops > 2;
die 'the RPO override did not hold' unless q1("SELECT bool_and(rpo_seconds = 4000) FROM asr_items") eq 't';

# the stored state (last refresh of each item) before a refresh
my $mark = q1("SELECT clock_timestamp()");

# The page: sync-vm-1 without properties, sync-vm-2 without id, sync-vm-3
# with a fractional RPO, sync-vm-4 with a null operation (and fewer of
# them), sync-vm-5 intact with a changed health.
my @page = map { decode_json(encode_json($doc{"sync-vm-$_"})) } 1 .. 5;
delete $page[0]{properties};
delete $page[1]{id};
$page[2]{properties}{providerSpecificDetails}{rpoInSeconds} = 12.7;
$page[3]{properties}{allowedOperations} = [ $ops[0], undef, $ops[1] ];
$page[4]{properties}{replicationHealth} = 'Critical';
my $fault = emulator_control($emu, 'POST', '/faults',
	{ action => 'status', status => 200, count => undef, body => { value => \@page },
	  match => { method => 'GET', path => 'replicationProtectedItems$' } })->{id};

my $message = "listing the vault's items: a document that is not a replication protected item ($arm_id{'sync-vm-1'}) was left out";
my ($ret, $out, $err) = $node->psql('postgres', "SELECT asr_sync('dr', '120 s')", timeout => 180);
isnt($ret, 0, 'asr_sync reports the refresh with a left-out document as failed');
like($err, qr/refresh of vault "dr" failed.*\Q$message\E/s, 'and names the left-out document') or diag($err);
is(q1("SELECT sync_error FROM asr_vaults WHERE name = 'dr'"), $message,
	"asr_vaults.sync_error names the first document left out (sync-vm-1's ARM id)");

# the other documents of the page were stored by this refresh
is(q1("SELECT string_agg(name, ',' ORDER BY name) FROM asr_items WHERE synced_at > '$mark'"),
	'sync-vm-3,sync-vm-4,sync-vm-5', 'the three item documents of the page were stored, the two others not');
is(q1("SELECT rpo_seconds FROM asr_items WHERE name = 'sync-vm-3'"), '13',
	'rpoInSeconds 12.7 is stored rounded to 13 s');
is(q1("SELECT properties #>> '{providerSpecificDetails,rpoInSeconds}' FROM asr_items WHERE name = 'sync-vm-3'"), '12.7',
	"with Azure's properties as sent");
is(q1("SELECT allowed_operations FROM asr_items WHERE name = 'sync-vm-4'"), "{$ops[0],$ops[1]}",
	'allowed operations are stored without the null');
is(q1("SELECT replication_health FROM asr_items WHERE name = 'sync-vm-5'"), 'Critical',
	'the intact document was stored (changed health)');

# nothing was forgotten: the items whose documents were broken are kept as they were
is(q1("SELECT count(*) FROM asr_items"), '5', 'no item was forgotten');
is(row('sync-vm-1'), $row_before{'sync-vm-1'}, 'the item sent without properties is kept unchanged');
is(row('sync-vm-2'), $row_before{'sync-vm-2'}, 'the item sent without id is kept unchanged');

# a page whose only broken document is one without id: the error says so
$page[0] = decode_json(encode_json($doc{'sync-vm-1'}));
emulator_control($emu, 'DELETE', "/faults/$fault");
$fault = emulator_control($emu, 'POST', '/faults',
	{ action => 'status', status => 200, count => undef, body => { value => [ $page[1], @page[0, 2 .. 4] ] },
	  match => { method => 'GET', path => 'replicationProtectedItems$' } })->{id};
$mark = q1("SELECT clock_timestamp()");
($ret, $out, $err) = $node->psql('postgres', "SELECT asr_sync('dr', '120 s')", timeout => 180);
isnt($ret, 0, 'a page with a document without id fails the refresh too');
is(q1("SELECT sync_error FROM asr_vaults WHERE name = 'dr'"),
	"listing the vault's items: a document that is not a replication protected item (no id) was left out",
	'the sync error says the left-out document had no id');
is(q1("SELECT string_agg(name, ',' ORDER BY name) FROM asr_items WHERE synced_at > '$mark'"),
	'sync-vm-1,sync-vm-3,sync-vm-4,sync-vm-5', 'the four item documents were stored');
is(q1("SELECT count(*) FROM asr_items"), '5', 'no item was forgotten');
is(row('sync-vm-2'), $row_before{'sync-vm-2'}, 'the item sent without id is kept unchanged');

# elements of the list that are no object at all (null, a string) are no
# item documents either: the others are stored, nothing is forgotten
emulator_control($emu, 'DELETE', "/faults/$fault");
$fault = emulator_control($emu, 'POST', '/faults',
	{ action => 'status', status => 200, count => undef, body => { value => [ undef, 'x', @page[2 .. 4] ] },
	  match => { method => 'GET', path => 'replicationProtectedItems$' } })->{id};
($ret, $out, $err) = $node->psql('postgres', "SELECT asr_sync('dr', '120 s')", timeout => 180);
isnt($ret, 0, 'a page with a null and a string in its value fails the refresh');
is(q1("SELECT sync_error FROM asr_vaults WHERE name = 'dr'"),
	"listing the vault's items: a document that is not a replication protected item (no id) was left out",
	'the sync error says a document without id was left out');
is(q1("SELECT count(*) FROM asr_items"), '5', 'no item was forgotten for the null and the string');

# Azure answers the real list again: the error is gone, everything as before
emulator_control($emu, 'DELETE', "/faults/$fault");
my $vault_synced = q1("SELECT synced_at FROM asr_vaults WHERE name = 'dr'");
$mark = q1("SELECT clock_timestamp()");
is(q1("SELECT asr_sync('dr', '120 s')"), '5', 'the next refresh succeeds with the five items');
is(q1("SELECT sync_error IS NULL AND synced_at > '$vault_synced' FROM asr_vaults WHERE name = 'dr'"), 't',
	'the sync error is cleared and the vault refreshed');
is(q1("SELECT count(*) FROM asr_items WHERE synced_at > '$mark'"), '5', 'every item was stored again');
is(snapshot(), $before, 'every item is as before the broken pages');

$node->stop('fast');
done_testing();

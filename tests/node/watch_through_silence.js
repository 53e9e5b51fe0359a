// Used by tests/test_keepalive.py: watch through TARGET with a 1 s keepalive, print "ready"
// once the stream delivers, "live <revision>" for each REBOOT event of inst0 before stdin
// says "frozen" (the test reboots once first: seeing it proves the snapshot complete, so a
// resume continues after it instead of taking a new snapshot), then "rebooted <revision>"
// for the first REBOOT event of inst0 after "frozen" (the test has silenced the connection
// and rebooted inst0 meanwhile), and exit 0. Anything else: exit 1 with the error.

const path = require('node:path');
const readline = require('node:readline');
const { Client } = require(path.resolve(__dirname, '..', '..', 'clients', 'node', 'index.js'));

const client = new Client(process.env.TARGET, {
  username: 'mockuser',
  password: 'mockpassword',
  channelOptions: { 'grpc.keepalive_time_ms': 1000, 'grpc.keepalive_timeout_ms': 1000 },
});
let frozen = false;
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'frozen') frozen = true;
});

(async () => {
  let ready = false;
  for await (const event of client.watch({ initial_snapshot: true, progress_interval: { seconds: 300 } })) {
    if (!ready) {
      ready = true;
      console.log('ready');
    }
    if (event.instance_id !== 'inst0' || event.cause !== 'EVENT_CAUSE_REBOOT') continue;
    if (!frozen) {
      console.log(`live ${event.revision}`);
      continue;
    }
    console.log(`rebooted ${event.revision}`);
    client.close();
    process.exit(0);
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

// An aedes broker for the integration tests (tests/it/support/brokers.rs, `Broker::aedes`).
//
//   node aedes-broker.cjs --modules DIR --port N [--no-delay] [--id INSTANCE_ID]
//
// DIR holds node_modules/ with aedes@1.2.0 and aedes-stats@4.0.0 (scripts/install-deps.sh
// installs them into target/tools/aedes). Listens on 127.0.0.1 only, publishes aedes-stats'
// $SYS tree every second and a heartbeat every second, prints one line once listening and
// exits on SIGTERM/SIGINT. aedes 1.x is an ES module: loaded with import(), no extra deps.
'use strict'

const net = require('node:net')
const path = require('node:path')
const { createRequire } = require('node:module')
const { pathToFileURL } = require('node:url')

function parseArgs (argv) {
  const a = { port: null, noDelay: false, id: undefined, modules: null }
  for (let i = 0; i < argv.length; i++) {
    switch (argv[i]) {
      case '--port': a.port = Number(argv[++i]); break
      case '--no-delay': a.noDelay = true; break
      case '--id': a.id = argv[++i]; break
      case '--modules': a.modules = argv[++i]; break
      default: throw new Error(`unknown argument ${argv[i]}`)
    }
  }
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) throw new Error('--port N is required')
  if (!a.modules) throw new Error('--modules DIR is required')
  return a
}

async function main () {
  const args = parseArgs(process.argv.slice(2))
  const req = createRequire(path.join(path.resolve(args.modules), 'package.json'))
  const { Aedes } = await import(pathToFileURL(req.resolve('aedes')).href)
  const stats = req('aedes-stats')

  const broker = await Aedes.createBroker({ heartbeatInterval: 1000, id: args.id })
  stats(broker, { interval: 1000 })
  // noDelay: Node calls socket.setNoDelay(true) on every accepted connection (Nagle off).
  const server = net.createServer({ noDelay: args.noDelay }, broker.handle)

  const stop = () => {
    server.close()
    broker.close(() => process.exit(0))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)

  server.on('error', (e) => {
    console.error(`aedes: ${e.message}`)
    process.exit(1)
  })
  server.listen(args.port, '127.0.0.1', () => {
    console.log(`aedes ${broker.version} id ${broker.id} listening on 127.0.0.1:${args.port} noDelay=${args.noDelay}`)
  })
}

main().catch((e) => {
  console.error(`aedes: ${e.stack || e}`)
  process.exit(1)
})

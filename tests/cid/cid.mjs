#!/usr/bin/env node
// Prints the IPFS CID of a file, computed as kubo's `ipfs add` computes it, with the JS
// UnixFS importer (an implementation independent of raleph's Rust code).
//
//   node cid.mjs <file>         CIDv0: dag-pb UnixFS 'file' leaves, 256 KiB fixed chunks,
//                               balanced DAG with at most 174 links per node, a file of one
//                               chunk is its own root (kubo `ipfs add` defaults)
//   node cid.mjs <file> --v1    CIDv1 with raw leaves, otherwise the same
//                               (kubo `ipfs add --cid-version=1`)
//   node cid.mjs - [--v1]       reads standard input
//
// Blocks are thrown away (black-hole blockstore), so memory stays flat for any file size.

import { createReadStream } from 'node:fs'
import { BlackHoleBlockstore } from 'blockstore-core/black-hole'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const CHUNK_SIZE = 262144
const MAX_CHILDREN_PER_NODE = 174

function usage (message) {
  if (message) process.stderr.write(`cid.mjs: ${message}\n`)
  process.stderr.write('usage: node cid.mjs <file|-> [--v1]\n')
  process.exit(2)
}

const args = process.argv.slice(2)
const v1 = args.includes('--v1')
const files = args.filter((a) => a !== '--v1')
if (files.length !== 1 || files[0].startsWith('--')) usage(files.length === 0 ? 'no file given' : `bad arguments: ${args.join(' ')}`)
const path = files[0]

const options = {
  cidVersion: v1 ? 1 : 0,
  rawLeaves: v1,
  leafType: 'file',
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: CHUNK_SIZE }),
  layout: balanced({ maxChildrenPerNode: MAX_CHILDREN_PER_NODE }),
  wrapWithDirectory: false
}

// highWaterMark = one chunk: the stream hands the importer 256 KiB pieces.
const content = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: CHUNK_SIZE })

let root
try {
  for await (const entry of importer([{ content }], new BlackHoleBlockstore(), options)) {
    root = entry.cid
  }
} catch (err) {
  process.stderr.write(`cid.mjs: ${err.message ?? err}\n`)
  process.exit(1)
}
if (root === undefined) {
  process.stderr.write('cid.mjs: the importer produced no root\n')
  process.exit(1)
}
process.stdout.write(`${root.toString()}\n`)

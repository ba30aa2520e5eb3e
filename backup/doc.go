// Package backup is raftkv's backup file format and where backups are kept.
//
// It owns:
//   - the backup file format: a header, a JSON manifest protected by its own
//     SHA-256, and the gzip-compressed FSM snapshot stream (the payload) with
//     its SHA-256 in the manifest (docs/backup.md; golden file in
//     testdata/v1/);
//   - writing a backup from a raft snapshot stream (Prepare), checking one
//     completely (Reader.Verify) and extracting its snapshot stream for a
//     restore (Reader.Extract);
//   - the Destination interface and its local-directory implementation Dir;
//   - offline restore: seeding an empty data directory of a new cluster
//     from a backup (Seed).
//
// It must never:
//   - import anything but the standard library and hashicorp/raft:
//     raftkvctl links it for offline verify and restore, and must not link
//     server code (STYLE.md §1). That is why it decodes the FSM snapshot
//     stream itself instead of calling package fsm; its tests check the two
//     agree;
//   - report a backup as good before every byte of it has been checked, or
//     leave a partial file where List would show it;
//   - talk to a cluster: online restore goes through raft in package node.
package backup

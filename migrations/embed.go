// Package migrations embeds the SQL migrations so the binary carries its
// schema; golang-migrate applies them at start under its advisory lock.
//
// Numbering: append only, never edit a file that has landed. Ranges are
// reserved per area so parallel work does not collide:
// 1-9 core, 10-19 workspaces/registry, 20-29 a2a/metering, 30-39 memory/events,
// 40-49 provisioning, 50-59 org templates/plugins/schedules/channels, 60-69 artifacts.
package migrations

import "embed"

//go:embed *.sql
var FS embed.FS

package app

import (
	"context"
	"time"
)

// retentionBatch bounds one DELETE so pruning never holds many row locks
// or a long transaction; a tick deletes at most retentionBatches batches.
const (
	retentionBatch    = 5000
	retentionBatches  = 20
	retentionInterval = time.Minute
)

// PruneRetention deletes stored events older than MOLECULE_EVENT_RETENTION
// and expired key-value memory rows. Each batch claims its rows with
// FOR UPDATE SKIP LOCKED, so replicas running this loop at the same time
// split the work instead of repeating it.
func (a *App) PruneRetention(ctx context.Context) error {
	cutoff := time.Now().Add(-a.Config.EventRetention)
	var events, memory int64
	for i := 0; i < retentionBatches; i++ {
		n, err := a.Store.PruneEvents(ctx, cutoff, retentionBatch)
		if err != nil {
			return err
		}
		events += n
		if n < retentionBatch {
			break
		}
	}
	for i := 0; i < retentionBatches; i++ {
		n, err := a.Store.PruneExpiredMemory(ctx, retentionBatch)
		if err != nil {
			return err
		}
		memory += n
		if n < retentionBatch {
			break
		}
	}
	if events+memory > 0 {
		a.Log.Info("retention pruned rows", "events", events, "memory", memory)
	}
	return nil
}

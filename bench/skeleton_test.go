package bench

import (
	"context"
	"testing"
	"time"

	"github.com/herald-notify/herald/heraldtest"
)

// TestSkeletonDeliversWhatItAccepts runs the skeleton briefly on a scratch database and vhost:
// everything it accepted reaches the sinks once, every notification's status row says sent with
// its three history rows beside it, and the outbox is empty.
func TestSkeletonDeliversWhatItAccepts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the skeleton for half a second; skipped with -short")
	}
	db := heraldtest.NewDatabase(t)
	amqpURL := heraldtest.NewVHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := openSkeleton(ctx, db.URL, amqpURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(context.Background())
	got, err := s.run(ctx, 500*time.Millisecond, 30*time.Second)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if got.Accepted == 0 || got.Delivered != got.Accepted || got.DeliveredPerSec <= 0 {
		t.Errorf("skeleton %+v: want some accepted, every one delivered once, a rate", got)
	}
	var sent, history, outbox int64
	if err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM `+skelStatus+` WHERE status = 'NotificationSent' AND version = 3),
		(SELECT count(*) FROM `+skelHistory+`),
		(SELECT count(*) FROM `+skelOutbox+`)`).Scan(&sent, &history, &outbox); err != nil {
		t.Fatal(err)
	}
	if sent != got.Accepted || history != 3*got.Accepted || outbox != 0 {
		t.Errorf("read models: %d sent, %d history rows, %d outbox rows; want %d, %d, 0", sent, history, outbox, got.Accepted, 3*got.Accepted)
	}
}

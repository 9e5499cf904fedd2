// Package promotions holds the Promotion workflow: an image goes to staging, waits
// at the approval gate, then through canary steps in every production cluster,
// with the verbs (approve, reject, pause, resume, promote-full, rollback) as
// updates.
package promotions

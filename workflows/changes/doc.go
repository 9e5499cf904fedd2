// Package changes holds the workflows a Gerrit change goes through: the Pipeline
// (build and run the test variant, build the production image, deploy it in
// isolation and smoke-test it, publish it), ChangeVerification (a pipeline per
// patchset, reported back as a Verified vote), the MergeBatcher (merges of one
// branch built together, then promoted) and the BaseImageCheck (rebuilds when a
// base image moves).
package changes

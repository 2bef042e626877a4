// Package detector turns heartbeats into node events.
//
// The Beacon (run by every agent) publishes a heartbeat on <prefix>.hb.<host>.
// The Monitor (run by xenft detector) keeps a window of inter-arrival times per
// host, computes the phi-accrual suspicion level, and publishes node.suspect,
// node.failed and node.recovered. Plug-in detectors run site commands on a
// schedule and publish node.fault. Detectors only publish events; they never act.
package detector

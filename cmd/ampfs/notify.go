package main

import (
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/rs/zerolog"
)

// systemd readiness (Type=notify, sd_notify(3)): READY=1 once the mount is
// up, STOPPING=1 while staged files are uploaded on stop. Without
// $NOTIFY_SOCKET these do nothing.

func notifyReady(log zerolog.Logger) {
	sdNotify(log, daemon.SdNotifyReady+"\nSTATUS=mounted")
}

func notifyStopping(log zerolog.Logger) {
	sdNotify(log, daemon.SdNotifyStopping+"\nSTATUS=uploading staged files, then unmounting")
}

func sdNotify(log zerolog.Logger, state string) {
	// unsetEnvironment false: a restart of the unit's main process keeps
	// talking to systemd.
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn().Err(err).Msg("could not notify systemd")
	}
}

//! The defined events: apply `kprobe_events` lines, enable, list, profile.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::def::{parse, Command, EventDef, Flavor};
use crate::error::{ParseError, Reason};
use crate::format::write_profile_line;
use crate::regs::RegisterNames;

/// A defined event and its counters.
#[derive(Debug)]
pub struct Event {
    /// The definition.
    pub def: EventDef,
    /// Whether it records.
    pub enabled: bool,
    /// Hits (`kprobe_profile`'s second column).
    pub hits: AtomicU64,
    /// Misses (the probe's `nmissed`, or records lost).
    pub misses: AtomicU64,
}

/// What [`EventTable::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Defined the event at this index.
    Defined(usize),
    /// Deleted the event at this index.
    Deleted(usize),
    /// An empty line or a comment.
    Nothing,
}

/// Up to `N` events of one flavor. Nothing changes when a line is refused.
pub struct EventTable<const N: usize> {
    flavor: Flavor,
    events: [Option<Event>; N],
}

impl<const N: usize> EventTable<N> {
    /// An empty table for `kprobe_events` or `uprobe_events`.
    pub const fn new(flavor: Flavor) -> Self {
        Self {
            flavor,
            events: [const { None }; N],
        }
    }

    /// Apply one line (define, `-:` delete, empty or comment).
    pub fn apply(&mut self, line: &str, names: &dyn RegisterNames) -> Result<Applied, ParseError> {
        match parse(line, self.flavor, names)? {
            Command::Nothing => Ok(Applied::Nothing),
            Command::Define(def) => {
                if self.find(Some(&def.group), &def.event).is_some() {
                    return Err(ParseError {
                        pos: 0,
                        reason: Reason::EventExist,
                    });
                }
                let Some(i) = self.events.iter().position(Option::is_none) else {
                    return Err(ParseError {
                        pos: 0,
                        reason: Reason::TooManyEvents,
                    });
                };
                self.events[i] = Some(Event {
                    def,
                    enabled: false,
                    hits: AtomicU64::new(0),
                    misses: AtomicU64::new(0),
                });
                Ok(Applied::Defined(i))
            }
            Command::Delete { group, event } => {
                let pos = line.find(':').map_or(0, |p| p + 1);
                let Some(i) = self.find(group.as_deref(), &event) else {
                    return Err(ParseError {
                        pos,
                        reason: Reason::EventNotFound,
                    });
                };
                if self.events[i].as_ref().is_some_and(|e| e.enabled) {
                    return Err(ParseError {
                        pos,
                        reason: Reason::EventBusy,
                    });
                }
                self.events[i] = None;
                Ok(Applied::Deleted(i))
            }
        }
    }

    /// The index of `[group/]event`.
    pub fn find(&self, group: Option<&str>, event: &str) -> Option<usize> {
        self.events.iter().position(|e| {
            e.as_ref()
                .is_some_and(|e| e.def.event == event && group.is_none_or(|g| e.def.group == g))
        })
    }

    /// The event at `i`.
    pub fn get(&self, i: usize) -> Option<&Event> {
        self.events.get(i)?.as_ref()
    }

    /// Enable or disable the event at `i`; false if there is none.
    pub fn set_enabled(&mut self, i: usize, on: bool) -> bool {
        match self.events.get_mut(i).and_then(Option::as_mut) {
            Some(e) => {
                e.enabled = on;
                true
            }
            None => false,
        }
    }

    /// Defined events with their indices.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &Event)> {
        self.events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.as_ref()?)))
    }

    /// The `kprobe_events` / `uprobe_events` file.
    pub fn write_events(&self, w: &mut dyn Write) -> fmt::Result {
        for (_, e) in self.iter() {
            e.def.write_listing(w)?;
            w.write_char('\n')?;
        }
        Ok(())
    }

    /// The `kprobe_profile` file.
    pub fn write_profile(&self, w: &mut dyn Write) -> fmt::Result {
        for (_, e) in self.iter() {
            write_profile_line(
                w,
                &e.def.event,
                e.hits.load(Ordering::Relaxed),
                e.misses.load(Ordering::Relaxed),
            )?;
        }
        Ok(())
    }
}

//! What users write about a run after the fact — its tags, a note, a new message — and the
//! history of those changes, which the record keeps ([`Record::edits`]).
//!
//! A change is refused while the run is live: its process writes the record as it goes
//! (progress, metrics, the end), and the user should see the run's notes as it ends. A
//! process that takes the run in between (a `train --resume` started at the same moment)
//! keeps what users wrote whenever it saves the record (`Run::save`).

use super::record::{Edit, EditedField, Record};
use super::{Result, Store, StoreError};

/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// The most tags a run may have.
pub const MAX_TAGS: usize = 64;
/// The longest message or note, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;

/// A change of a run's notes. `None` leaves a field as it is; an empty message or note
/// removes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NotesChange {
    /// The new message.
    pub message: Option<String>,
    /// The new note.
    pub note: Option<String>,
    /// Tags to add (those the run has already are left).
    pub add_tags: Vec<String>,
    /// Tags to remove (those the run lacks are ignored).
    pub remove_tags: Vec<String>,
}

impl NotesChange {
    /// True when it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.message.is_none()
            && self.note.is_none()
            && self.add_tags.is_empty()
            && self.remove_tags.is_empty()
    }

    /// The tags a run with `current` has after this change: sorted, each once.
    pub fn tags_of(&self, current: &[String]) -> Vec<String> {
        let mut tags: Vec<String> = current
            .iter()
            .filter(|t| !self.remove_tags.contains(t))
            .chain(&self.add_tags)
            .cloned()
            .collect();
        tags.sort();
        tags.dedup();
        tags
    }

    /// Refuses what a record should not hold, saying why: a tag that the filter could not
    /// name (`tag:T`), more than [`MAX_TAGS`] tags, a tag both added and removed, text that is
    /// too long or holds control characters (other than line breaks and tabs) or characters
    /// that reorder what is shown (bidirectional overrides).
    pub fn check(&self) -> std::result::Result<(), String> {
        for t in self.add_tags.iter().chain(&self.remove_tags) {
            check_tag(t)?;
        }
        if self.add_tags.len() > MAX_TAGS {
            return Err(format!(
                "{} tags to add: {MAX_TAGS} at most",
                self.add_tags.len()
            ));
        }
        if let Some(t) = self.add_tags.iter().find(|t| self.remove_tags.contains(t)) {
            return Err(format!("tag `{t}` is both added and removed"));
        }
        if let Some(m) = &self.message {
            check_text("message", m)?;
        }
        if let Some(n) = &self.note {
            check_text("note", n)?;
        }
        Ok(())
    }
}

/// Splits `text` into tags at spaces and commas (`"best, baseline"`): what a form's or the
/// command line's list of tags means.
pub fn split_tags(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// A tag is 1 to [`MAX_TAG_CHARS`] letters, digits and `- _ . / + @ # :`: one word of a filter
/// (`tag:baseline`), which neither splits at a space nor reads as a comparison.
pub fn check_tag(tag: &str) -> std::result::Result<(), String> {
    if tag.is_empty() {
        return Err("an empty tag".into());
    }
    if tag.chars().count() > MAX_TAG_CHARS {
        return Err(format!(
            "tag `{}…` is longer than {MAX_TAG_CHARS} characters",
            tag.chars().take(16).collect::<String>()
        ));
    }
    if let Some(c) = tag
        .chars()
        .find(|c| !(c.is_alphanumeric() || "-_./+@#:".contains(*c)))
    {
        return Err(format!(
            "tag `{}`: `{}` is not allowed (a tag is letters, digits and - _ . / + @ # :)",
            crate::util::printable::printable(tag),
            c.escape_default()
        ));
    }
    Ok(())
}

fn check_text(what: &str, text: &str) -> std::result::Result<(), String> {
    // A line break counts once, however the browser sent it (a text area's are CR LF).
    if text.chars().count() - text.matches("\r\n").count() > MAX_TEXT_CHARS {
        return Err(format!(
            "the {what} is longer than {MAX_TEXT_CHARS} characters"
        ));
    }
    let allowed =
        |c: char| !crate::util::printable::is_hidden_control(c) || matches!(c, '\n' | '\r' | '\t');
    if let Some(c) = text.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "the {what} holds a control character ({})",
            c.escape_default()
        ));
    }
    Ok(())
}

/// Applies `change` to `record`, adding an [`Edit`] for each field that changed (none for a
/// change that changes nothing). `by` says who, `at` when.
pub fn apply(record: &mut Record, change: &NotesChange, by: &str, at: &str) {
    let mut edit = |field, from: Option<String>, to: Option<String>| {
        record_edit(&mut record.edits, field, from, to, by, at)
    };
    if let Some(m) = &change.message {
        let to = non_empty(&m.replace("\r\n", "\n"));
        if to != record.message {
            edit(EditedField::Message, record.message.clone(), to.clone());
            record.message = to;
        }
    }
    if let Some(n) = &change.note {
        // Browsers send a textarea's lines with CR LF.
        let to = non_empty(&n.replace("\r\n", "\n"));
        if to != record.note {
            edit(EditedField::Note, record.note.clone(), to.clone());
            record.note = to;
        }
    }
    let tags = change.tags_of(&record.tags);
    if tags != record.tags {
        let line = |t: &[String]| (!t.is_empty()).then(|| t.join(" "));
        edit(EditedField::Tags, line(&record.tags), line(&tags));
        record.tags = tags;
    }
}

fn record_edit(
    edits: &mut Vec<Edit>,
    field: EditedField,
    from: Option<String>,
    to: Option<String>,
    by: &str,
    at: &str,
) {
    edits.push(Edit {
        at: at.to_string(),
        by: by.to_string(),
        field,
        from,
        to,
    });
}

fn non_empty(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_string())
}

impl Store {
    /// Changes the notes of run `id` (its full id) as `change` says, atomically, recording
    /// who (`by`) and when in the record's history of edits; returns the record as written
    /// and the edits this change added (none when it changed nothing). Refused for a run
    /// that is live (its process writes the record as it goes), and for a change the record
    /// should not hold ([`NotesChange::check`]); a run moved to the trash meanwhile says so.
    pub fn edit_notes(
        &self,
        id: &str,
        change: &NotesChange,
        by: &str,
    ) -> Result<(Record, Vec<Edit>)> {
        change.check().map_err(StoreError::BadEdit)?;
        let gone = |e: StoreError| match e {
            StoreError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                if self.is_trashed(id) {
                    StoreError::InTrash { id: id.to_string() }
                } else {
                    StoreError::NotFound {
                        spec: id.to_string(),
                        store: self.root.clone(),
                    }
                }
            }
            StoreError::Write(ref source) if source.kind() == std::io::ErrorKind::NotFound => {
                if self.is_trashed(id) {
                    StoreError::InTrash { id: id.to_string() }
                } else {
                    e
                }
            }
            e => e,
        };
        let run = self.read(id).map_err(gone)?;
        if self.is_alive(&run.id) {
            return Err(StoreError::LiveEdit { id: run.id });
        }
        if change.is_empty() {
            return Ok((run, Vec::new()));
        }
        let tags = change.tags_of(&run.tags);
        if tags.len() > MAX_TAGS {
            return Err(StoreError::BadEdit(format!(
                "run {} would have {} tags: {MAX_TAGS} at most",
                run.id,
                tags.len()
            )));
        }
        let at = super::now_rfc3339();
        let mut added = Vec::new();
        // Under the record's lock: concurrent edits, test runs adding their results and a
        // `train --resume` of the run (whose saves keep what users wrote) all land.
        let record = self
            .update(&run.id, |r| {
                let before = r.edits.len();
                apply(r, change, by, &at);
                added = r.edits[before..].to_vec();
            })
            .map_err(gone)?;
        Ok((record, added))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::record::{RunKind, RunStatus};

    fn record() -> Record {
        let mut r = Record::new("digits", RunKind::Train, 1);
        r.status = RunStatus::Finished;
        r.message = Some("first".into());
        r
    }

    #[test]
    fn changes_keep_their_history_and_nothing_changed_adds_nothing() {
        let mut r = record();
        let change = NotesChange {
            message: Some("  wider  ".into()),
            note: Some("line one\r\nline two".into()),
            add_tags: vec!["best".into(), "baseline".into(), "best".into()],
            remove_tags: vec!["absent".into()],
        };
        apply(&mut r, &change, "ana@box (browser)", "2026-12-06T10:00:00Z");
        assert_eq!(r.message.as_deref(), Some("wider"));
        assert_eq!(r.note.as_deref(), Some("line one\nline two"));
        assert_eq!(r.tags, ["baseline", "best"]);
        let fields: Vec<_> = r.edits.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [EditedField::Message, EditedField::Note, EditedField::Tags]
        );
        assert_eq!(r.edits[0].from.as_deref(), Some("first"));
        assert_eq!(r.edits[2].to.as_deref(), Some("baseline best"));
        assert_eq!(r.edits[0].by, "ana@box (browser)");

        // The same again changes nothing, and records nothing.
        apply(&mut r, &change, "ana@box (browser)", "2026-12-06T10:01:00Z");
        assert_eq!(r.edits.len(), 3);

        let clear = NotesChange {
            message: Some(String::new()),
            note: Some(" ".into()),
            remove_tags: vec!["best".into(), "baseline".into()],
            ..NotesChange::default()
        };
        apply(&mut r, &clear, "bo@box (edit)", "2026-12-06T10:02:00Z");
        assert_eq!((r.message.clone(), r.note.clone()), (None, None));
        assert!(r.tags.is_empty());
        assert_eq!(r.edits.len(), 6);
        assert_eq!(r.edits[5].from.as_deref(), Some("baseline best"));
        assert_eq!(r.edits[5].to, None);
    }

    #[test]
    fn what_a_record_should_not_hold_is_refused_with_the_reason() {
        let bad = |c: NotesChange| c.check().unwrap_err();
        let tags = |t: &str| NotesChange {
            add_tags: vec![t.into()],
            ..NotesChange::default()
        };
        assert!(bad(tags("lr=0.1")).contains("`=` is not allowed"));
        assert!(bad(tags("two words")).contains("not allowed"));
        assert!(bad(tags("")).contains("empty"));
        assert!(bad(tags(&"x".repeat(65))).contains("longer than 64"));
        assert!(tags("v1.2/best-ü@gpu#3").check().is_ok());
        let message = |m: &str| NotesChange {
            message: Some(m.into()),
            ..NotesChange::default()
        };
        assert!(message("two\nlines").check().is_ok());
        assert!(bad(message("a\u{7}b")).contains("control character"));
        assert!(bad(message("abc\u{202e}def")).contains("control character"));
        assert!(bad(message(&"m".repeat(20_001))).contains("longer than"));
        assert!(
            message(&format!("{}{}", "m".repeat(19_990), "\r\n".repeat(10)))
                .check()
                .is_ok()
        );
        let both = NotesChange {
            add_tags: vec!["a".into()],
            remove_tags: vec!["a".into()],
            ..NotesChange::default()
        };
        assert!(bad(both).contains("both added and removed"));
        let many = NotesChange {
            add_tags: (0..65).map(|i| format!("t{i}")).collect(),
            ..NotesChange::default()
        };
        assert!(bad(many).contains("64 at most"));
        let note = NotesChange {
            note: Some("two\nlines\tand a tab".into()),
            ..NotesChange::default()
        };
        assert!(note.check().is_ok());
        assert_eq!(split_tags(" a, b  c,,"), ["a", "b", "c"]);
    }

    #[test]
    fn a_live_run_is_refused_and_a_finished_one_changes_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path());
        let (live, lock) = store
            .create_locked(Record::new("digits", RunKind::Train, 1))
            .unwrap();
        assert!(lock.is_some());
        let change = NotesChange {
            add_tags: vec!["best".into()],
            ..NotesChange::default()
        };
        let e = store.edit_notes(&live.id, &change, "me@here").unwrap_err();
        assert!(matches!(e, StoreError::LiveEdit { .. }), "{e}");
        assert!(store.read(&live.id).unwrap().tags.is_empty());
        drop(lock);
        let (written, added) = store.edit_notes(&live.id, &change, "me@here").unwrap();
        assert_eq!(written.tags, ["best"]);
        assert_eq!(added.len(), 1);
        assert!(store
            .edit_notes(&live.id, &change, "me@here")
            .unwrap()
            .1
            .is_empty());
        assert_eq!(store.read(&live.id).unwrap().edits.len(), 1);
        // Edits at once all land, none taken for a live run.
        std::thread::scope(|scope| {
            for i in 0..8 {
                let (store, id) = (&store, &live.id);
                scope.spawn(move || {
                    let c = NotesChange {
                        add_tags: vec![format!("t{i}")],
                        ..NotesChange::default()
                    };
                    store.edit_notes(id, &c, "me@here").unwrap();
                });
            }
        });
        let r = store.read(&live.id).unwrap();
        assert_eq!((r.tags.len(), r.edits.len()), (9, 9));
        // No more than MAX_TAGS on a run.
        let more = NotesChange {
            add_tags: (0..60).map(|i| format!("u{i}")).collect(),
            ..NotesChange::default()
        };
        let e = store.edit_notes(&live.id, &more, "me@here").unwrap_err();
        assert!(e.to_string().contains("69 tags"), "{e}");
        // A run moved to the trash meanwhile says so.
        store.remove(&live.id, false).unwrap();
        let e = store.edit_notes(&live.id, &change, "me@here").unwrap_err();
        assert!(matches!(e, StoreError::InTrash { .. }), "{e}");
    }
}

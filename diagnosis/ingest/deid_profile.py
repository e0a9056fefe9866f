"""The DICOM PS3.15 Annex E *basic application confidentiality profile* as data: attribute -> action code.

Transcribed from PS3.15 (2024b) Table E.1-1, column "Basic Prof.", with the attribute keywords of pydicom's data
dictionary, plus the later rows for patient groups (``SourcePatientGroupIdentificationSequence``,
``GroupOfPatientsIdentificationSequence``), alternative-calendar dates and ``StorageMediaFileSetID``. When the standard
adds rows, add their keywords under their code here; :mod:`diagnosis.ingest.deid` applies whatever this table says.

Action codes (PS3.15 E.1.1): ``D`` replace with a dummy value, ``Z`` replace with an empty value, ``X`` remove,
``K`` keep, ``C`` clean (replace with values of similar meaning), ``U`` replace UIDs consistently; composite codes
(``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) leave the choice to the implementation, which
:func:`resolve_action` makes, together with the rules for attributes the table does not list (both are described
in :mod:`diagnosis.ingest.deid`). Two groups of attributes are given by a tag mask rather than a keyword: curves
(``50xx,xxxx``) and overlays (``60xx,xxxx``; the table names ``60xx,3000`` data and ``60xx,4000`` comments, every
overlay attribute is removed here). Private attributes are ``X``.

Why a table of our own rather than a package: ``deid`` (pydicom/deid) is driven by recipe files whose default recipe
is not Annex E and pulls in plotting dependencies for pixel cleaning; ``dicognito`` applies its own fixed rules
(random-looking fake names, its own UID root, one date offset per run) with no per-attribute action table. Neither
gives our keyed pseudonyms, the per-patient keyed date shift or ``2.25.<keyed hash>`` UIDs that stores and
re-ingests rely on, and both would still need the same audit (:func:`diagnosis.ingest.deid.remaining_phi`) on top.
Keeping the standard's table as data, in one place, makes every decision reviewable against the standard.
"""

from __future__ import annotations

from pydicom.datadict import dictionary_has_tag, tag_for_keyword

__all__ = ["ACTION_CODES", "BASIC_PROFILE", "MASKED_GROUPS", "PSEUDONYMISED", "action_for_tag",
           "resolve_action"]

ACTION_CODES = ("D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*")  # as written in Table E.1-1

# (tag & mask == value) -> action: curves and overlays, whole repeating groups
MASKED_GROUPS: tuple[tuple[int, int, str], ...] = (
    (0xFF000000, 0x50000000, "X"),  # curves (50xx,xxxx), retired but still written by old modalities
    (0xFF000000, 0x60000000, "X"),  # overlays (60xx,xxxx): overlay data 60xx,3000, comments 60xx,4000, ...
)

PSEUDONYMISED = (tag_for_keyword("PatientID"), tag_for_keyword("PatientName"))  # D: the keyed pseudonym
PATIENT_GROUP = 0x0010  # patient module: attributes the table does not list are removed too
TEMPORAL_VRS = ("DA", "DT", "TM")
FREE_TEXT_VRS = ("LT", "ST", "UT")
BINARY_VRS = ("OB", "OD", "OF", "OL", "OV", "OW", "UN", "SQ")  # no dummy value exists: D removes them
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloatPixelData

_TABLE: dict[str, str] = {
    "D": """
        AcquisitionFieldOfViewLabel AnnotationGroupLabel AnnotationGroupUID AssertionDateTime
        AttributeModificationDateTime BeamHoldTransitionDateTime CertificateOfSigner
        ClinicalTrialProtocolEthicsCommitteeName ClinicalTrialProtocolID ClinicalTrialSponsorName ClinicalTrialSubjectID
        ClinicalTrialSubjectReadingID ContainerIdentifier ContentSequence ContextGroupLocalVersion ContextGroupVersion
        Date DateTime DecayCorrectionDateTime DestinationAE DeviceLabel DigitalSignatureDateTime EffectiveDateTime
        EncapsulatedDocument EntityLabel EntityLongLabel ExclusionStartDateTime FlowIdentifier FlowIdentifierSequence
        FrameAcquisitionDateTime FrameOriginTimestamp FrameReferenceDateTime FunctionalSyncPulse
        GraphicAnnotationSequence HangingProtocolCreationDateTime ImpedanceMeasurementDateTime InformationIssueDateTime
        InterlockDateTime InterlockDescription InterlockOriginDescription ModifyingSystem OverrideDateTime
        PersonIdentificationCodeSequence PersonName RTPlanLabel RTPrescriptionLabel RTToleranceSetLabel
        RadiationDoseIdentificationLabel RadiationDoseInVivoMeasurementLabel RadiationGenerationModeLabel
        ReasonForTheAttributeModification RecordedRTControlPointDateTime ReferencedDateTime SafePositionExitDate
        SafePositionExitTime SafePositionReturnDate SafePositionReturnTime SelectorAEValue SelectorASValue
        SelectorDAValue SelectorDTValue SelectorLOValue SelectorLTValue SelectorOBValue SelectorPNValue SelectorSHValue
        SelectorSTValue SelectorTMValue SelectorUNValue SelectorURValue SelectorUTValue SourceEndDateTime
        SourceIdentifier SourceStartDateTime SourceStrengthReferenceDate SourceStrengthReferenceTime SpecimenIdentifier
        StructureSetLabel Time TreatmentControlPointDate TreatmentControlPointTime TreatmentPositionGroupLabel
        TreatmentToleranceViolationDateTime TreatmentToleranceViolationDescription UserContentLabel UserContentLongLabel
        VerificationDateTime VerifyingObserverName VerifyingObserverSequence VerifyingOrganization XRayDetectorID
        XRaySourceID
    """,
    "Z": """
        AccessionNumber CalibrationDateTime ClinicalTrialCoordinatingCenterName ClinicalTrialProtocolName
        ClinicalTrialSiteID ClinicalTrialSiteName ClinicalTrialTimePointID ConceptualVolumeCombinationDescription
        ConceptualVolumeDescription ConsultingPhysicianName DeviceAlternateIdentifier
        FillerOrderNumberImagingServiceRequest FractionationNotes IssuerOfTheContainerIdentifierSequence
        IssuerOfTheSpecimenIdentifierSequence ManufacturerDeviceIdentifier ParticipationDateTime PatientBirthDate
        PatientName PatientSex PlacerOrderNumberImagingServiceRequest PrescriptionNotes PrescriptionNotesSequence
        ROIInterpreter ROIName RTAccessoryDeviceSlotID RTAccessoryHolderSlotID RTPhysicianIntentNarrative
        RadiationGenerationModeDescription ReasonForSuperseding ReferringPhysicianName ReviewDate ReviewTime
        SourceOfPreviousValues SpecimenPreparationSequence StructureSetDate StructureSetTime StudyDate StudyID StudyTime
        TreatmentTechniqueNotes VerifyingObserverIdentificationCodeSequence
    """,
    "X": """
        AcquisitionComments AcquisitionProtocolDescription ActualHumanPerformersSequence AdditionalPatientHistory
        AddressTrial AdmissionID AdmittingDate AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription
        AdmittingTime AffectedSOPInstanceUID Allergies AnnotationGroupDescription ApprovalStatusDateTime Arbitrary
        AssertionExpirationDateTime AuthorObserverSequence BeamDescription BolusDescription BranchOfService
        CalibrationDate CalibrationTime CameraOwnerName CassetteID CertifiedTimestamp
        ClinicalTrialProtocolEthicsCommitteeApprovalNumber ClinicalTrialSeriesDescription ClinicalTrialSeriesID
        ClinicalTrialTimePointDescription CommentsOnRadiationDose CommentsOnThePerformedProcedureStep
        CompensatorDescription ConfidentialityConstraintOnPatientDataDescription
        ConsultingPhysicianIdentificationSequence ContainerComponentID ContainerDescription
        ContentCreatorIdentificationCodeSequence ContrastBolusStartTime ContrastBolusStopTime ContributionDateTime
        ContributionDescription CountryOfResidence CreationDate CreationTime CurrentObserverTrial CurrentPatientLocation
        CurveDate CurveTime CustodialOrganizationSequence DataSetTrailingPadding DateOfDocumentOrVerbalTransactionTrial
        DateOfInstallation DateOfLastCalibration DateOfManufacture DateOfSecondaryCapture DateTimeOfLastCalibration
        DecompositionDescription DerivationDescription DeviceDescription DeviceSettingDescription
        DigitalSignaturesSequence DischargeDate DischargeDiagnosisDescription DischargeTime DisplacementReferenceLabel
        DistributionAddress DistributionName DoseReferenceDescription EntityDescription EntityName
        EquipmentFrameOfReferenceDescription EthicsCommitteeApprovalEffectivenessEndDate
        EthicsCommitteeApprovalEffectivenessStartDate EthnicGroup ExpectedCompletionDateTime
        FilterLookupTableDescription FindingsGroupRecordingDateTrial FindingsGroupRecordingTimeTrial
        FixationDeviceDescription FractionGroupDescription FrameComments GPSAltitude GPSAltitudeRef GPSAreaInformation
        GPSDOP GPSDateStamp GPSDestBearing GPSDestBearingRef GPSDestDistance GPSDestDistanceRef GPSDestLatitude
        GPSDestLatitudeRef GPSDestLongitude GPSDestLongitudeRef GPSDifferential GPSImgDirection GPSImgDirectionRef
        GPSLatitude GPSLatitudeRef GPSLongitude GPSLongitudeRef GPSMapDatum GPSMeasureMode GPSProcessingMethod
        GPSSatellites GPSSpeed GPSSpeedRef GPSStatus GPSTimeStamp GPSTrack GPSTrackRef GPSVersionID GantryID GeneratorID
        GroupOfPatientsIdentificationSequence HL7DocumentEffectiveTime HumanPerformerName HumanPerformerOrganization
        IconImageSequence IdentifyingComments ImageComments ImagePresentationComments ImagingServiceRequestComments
        Impressions InstanceCoercionDateTime InstanceOriginStatus InstitutionAddress InstitutionalDepartmentName
        InstitutionalDepartmentTypeCodeSequence InsurancePlanIdentification IntendedFractionStartTime
        IntendedRecipientsOfResultsIdentificationSequence InterpretationApprovalDate InterpretationApprovalTime
        InterpretationApproverSequence InterpretationAuthor InterpretationDiagnosisDescription InterpretationID
        InterpretationIDIssuer InterpretationRecordedDate InterpretationRecordedTime InterpretationRecorder
        InterpretationText InterpretationTranscriber InterpretationTranscriptionDate InterpretationTranscriptionTime
        InterventionDrugStartTime InterventionDrugStopTime IssueDateOfImagingServiceRequest
        IssueTimeOfImagingServiceRequest IssuerOfAdmissionID IssuerOfAdmissionIDSequence IssuerOfClinicalTrialProtocolID
        IssuerOfClinicalTrialSeriesID IssuerOfClinicalTrialSiteID IssuerOfClinicalTrialSubjectID
        IssuerOfClinicalTrialSubjectReadingID IssuerOfClinicalTrialTimePointID IssuerOfPatientID
        IssuerOfServiceEpisodeID IssuerOfServiceEpisodeIDSequence LastMenstrualDate LensMake LensModel LensSerialNumber
        LensSpecification LongDeviceDescription MAC MakerNote MedicalAlerts MedicalRecordLocator MilitaryRank
        ModifiedAttributesSequence ModifiedImageDate ModifiedImageDescription ModifiedImageTime ModifyingDeviceID
        MultienergyAcquisitionDescription NameOfPhysiciansReadingStudy NamesOfIntendedRecipientsOfResults NetworkID
        NonconformingDataElementValue NonconformingModifiedAttributesSequence ObservationDateTrial
        ObservationStartDateTime ObservationTimeTrial Occupation OrderCallbackPhoneNumber
        OrderCallbackTelecomInformation OrderEnteredBy OrderEntererLocation OriginalAttributesSequence Originator
        OtherClinicalTrialProtocolIDsSequence OtherPatientIDs OtherPatientIDsSequence OtherPatientNames OverlayDate
        OverlayTime ParticipantSequence PatientAddress PatientAge PatientAlternativeCalendar
        PatientBirthDateInAlternativeCalendar PatientBirthName PatientBirthTime PatientComments
        PatientDeathDateInAlternativeCalendar PatientInstitutionResidence PatientInsurancePlanCodeSequence
        PatientMotherBirthName PatientPrimaryLanguageCodeSequence PatientPrimaryLanguageModifierCodeSequence
        PatientReligiousPreference PatientSetupPhotoDescription PatientSize PatientState PatientTelecomInformation
        PatientTelephoneNumbers PatientTransportArrangements PatientTreatmentPreparationMethodDescription
        PatientTreatmentPreparationProcedureParameterDescription PatientWeight PerformedLocation
        PerformedProcedureStepDescription PerformedProcedureStepEndDate PerformedProcedureStepEndDateTime
        PerformedProcedureStepEndTime PerformedProcedureStepID PerformedProcedureStepStartDate
        PerformedProcedureStepStartDateTime PerformedProcedureStepStartTime PerformedStationAETitle
        PerformedStationGeographicLocationCodeSequence PerformedStationName PerformedStationNameCodeSequence
        PerformingPhysicianIdentificationSequence PerformingPhysicianName PersonAddress PersonTelecomInformation
        PersonTelephoneNumbers PhysicianApprovingInterpretation PhysiciansOfRecord
        PhysiciansOfRecordIdentificationSequence PhysiciansReadingStudyIdentificationSequence PlateID
        PositionAcquisitionTemplateDescription PositionAcquisitionTemplateName PreMedication PregnancyStatus
        PrescriptionDescription PresentationCreationDate PresentationCreationTime PriorTreatmentDoseDescription
        ProcedureStepCancellationDateTime ProductExpirationDateTime PyramidDescription PyramidLabel ROICreatorSequence
        ROIDateTime ROIDescription ROIGenerationDescription ROIInterpreterSequence ROIObservationDateTime
        ROIObservationDescription ROIObservationLabel RTPlanDescription RTPlanName RadiopharmaceuticalStartDateTime
        RadiopharmaceuticalStartTime RadiopharmaceuticalStopDateTime RadiopharmaceuticalStopTime
        ReasonForOmissionDescription ReasonForRequestedProcedureCodeSequence ReasonForStudy
        ReasonForTheImagingServiceRequest ReasonForTheRequestedProcedure ReasonForVisit ReasonForVisitCodeSequence
        ReceivingAE ReferencedDigitalSignatureSequence ReferencedPatientAliasSequence ReferencedPatientPhotoSequence
        ReferencedPatientSequence ReferencedSOPInstanceMACSequence ReferringPhysicianAddress
        ReferringPhysicianIdentificationSequence ReferringPhysicianTelephoneNumbers RegionOfResidence
        RequestAttributesSequence RequestedContrastAgent RequestedProcedureComments RequestedProcedureID
        RequestedProcedureLocation RequestedSeriesDescription RequestingAE RequestingPhysician RequestingService
        RespiratoryMotionCompensationTechniqueDescription ResponsibleOrganization ResponsiblePerson ResultsComments
        ResultsDistributionListSequence ResultsID ResultsIDIssuer RetrieveAETitle SOPAuthorizationDateTime
        ScheduledAdmissionDate ScheduledAdmissionTime ScheduledDischargeDate ScheduledDischargeTime
        ScheduledHumanPerformersSequence ScheduledPatientInstitutionResidence
        ScheduledPerformingPhysicianIdentificationSequence ScheduledPerformingPhysicianName
        ScheduledProcedureStepDescription ScheduledProcedureStepEndDate ScheduledProcedureStepEndTime
        ScheduledProcedureStepExpirationDateTime ScheduledProcedureStepID ScheduledProcedureStepLocation
        ScheduledProcedureStepModificationDateTime ScheduledProcedureStepStartDate ScheduledProcedureStepStartDateTime
        ScheduledProcedureStepStartTime ScheduledStationAETitle ScheduledStationGeographicLocationCodeSequence
        ScheduledStationName ScheduledStationNameCodeSequence ScheduledStudyLocation ScheduledStudyLocationAETitle
        ScheduledStudyStartDate ScheduledStudyStartTime ScheduledStudyStopDate ScheduledStudyStopTime SeriesDescription
        ServiceEpisodeDescription ServiceEpisodeID SetupTechniqueDescription ShieldingDeviceDescription SlideIdentifier
        SmokingStatus SourceManufacturer SourcePatientGroupIdentificationSequence SpecialNeeds SpecimenAccessionNumber
        SpecimenDetailedDescription SpecimenShortDescription StationAETitle StorageMediaFileSetID
        StructureSetDescription StructureSetName StudyArrivalDate StudyArrivalTime StudyComments StudyCompletionDate
        StudyCompletionTime StudyDescription StudyIDIssuer StudyReadDate StudyReadTime StudyVerifiedDate
        StudyVerifiedTime SubstanceAdministrationDateTime TelephoneNumberTrial TemplateLocalVersion TemplateVersion
        TextComments TextString TimeOfDocumentCreationOrVerbalTransactionTrial TimeOfLastCalibration
        TimeOfSecondaryCapture TimezoneOffsetFromUTC TopicAuthor TopicKeywords TopicSubject TopicTitle
        TransducerIdentificationSequence TreatmentSites UDISequence UniqueDeviceIdentifier
        VerbalSourceIdentifierCodeSequenceTrial VerbalSourceTrial VisitComments WaveformFilterDescription
        XRayDetectorLabel
    """,
    "U": """
        AcquisitionUID ConcatenationUID ConceptualVolumeUID ConstituentConceptualVolumeUID DeviceUID DigitalSignatureUID
        DimensionOrganizationUID DoseReferenceUID DosimetricObjectiveUID FailedSOPInstanceUIDList FiducialUID
        FrameOfReferenceUID InstanceCreatorUID IrradiationEventUID LargePaletteColorLookupTableUID
        ManufacturerDeviceClassUID MediaStorageSOPInstanceUID MultiplexGroupUID ObservationSubjectUIDTrial
        ObservationUID PaletteColorLookupTableUID PatientSetupUID PresentationDisplayCollectionUID
        PresentationSequenceCollectionUID PyramidUID RTTreatmentPhaseUID ReferencedConceptualVolumeUID
        ReferencedDoseReferenceUID ReferencedDosimetricObjectiveUID ReferencedFiducialsUID ReferencedFrameOfReferenceUID
        ReferencedGeneralPurposeScheduledProcedureStepTransactionUID ReferencedObservationUIDTrial
        ReferencedSOPInstanceUID ReferencedSOPInstanceUIDInFile ReferencedTreatmentPositionGroupUID
        RelatedFrameOfReferenceUID RequestedSOPInstanceUID SOPInstanceUID SeriesInstanceUID SourceConceptualVolumeUID
        SourceFrameOfReferenceUID SpecimenUID StorageMediaFileSetUID StudyInstanceUID SynchronizationFrameOfReferenceUID
        TargetUID TemplateExtensionCreatorUID TemplateExtensionOrganizationUID TrackingUID TransactionUID
        TreatmentPositionGroupUID TreatmentSessionUID UID
    """,
    "Z/D": """
        ContentCreatorName ContentDate ContentTime ContrastBolusAgent InstructionPerformedDateTime PatientID
    """,
    "X/Z": """
        AcquisitionContextSequence AcquisitionDate AcquisitionTime BarcodeValue LabelText PatientSexNeutered
        ReferencedStudySequence RequestedProcedureDescription ReviewerName SourceSerialNumber TreatmentMachineName
    """,
    "X/D": """
        AcquisitionDeviceProcessingDescription DateOfLastDetectorCalibration DetectorID EndAcquisitionDateTime
        FirstTreatmentDate InstanceCreationDate IntendedPhaseEndDate IntendedPhaseStartDate MostRecentTreatmentDate
        ObservationDateTime OperatorIdentificationSequence ProtocolName RTPlanDate RTPlanTime RTTreatmentApproachLabel
        SeriesDate SeriesTime StartAcquisitionDateTime TimeOfLastDetectorCalibration TreatmentDate TreatmentSite
        TreatmentTime
    """,
    "X/Z/D": """
        AcquisitionDateTime DeviceSerialNumber InstanceCreationTime InstitutionCodeSequence InstitutionName
        OperatorsName ReferencedPerformedProcedureStepSequence StationName
    """,
    "X/Z/U*": """
        ReferencedImageSequence SourceImageSequence
    """,
}


def _parse(table: dict[str, str]) -> dict[int, str]:
    """Keyword groups -> ``{tag: action}``; a keyword the installed pydicom does not know is a bug in this table."""
    parsed: dict[int, str] = {}
    for code, keywords in table.items():
        assert code in ACTION_CODES, code
        for keyword in keywords.split():
            tag = tag_for_keyword(keyword)
            if tag is None:
                raise RuntimeError(f"deid_profile: unknown DICOM keyword {keyword!r}; update pydicom or this table")
            assert tag not in parsed, keyword  # one action per attribute
            parsed[tag] = code
    return parsed


BASIC_PROFILE: dict[int, str] = _parse(_TABLE)  # tag -> action code of Table E.1-1


def action_for_tag(tag: int) -> str | None:
    """The Annex E action code for a tag (private tags: ``X``), or ``None`` when the table does not list it."""
    if tag in BASIC_PROFILE:
        return BASIC_PROFILE[tag]
    if (tag >> 16) % 2 == 1:
        return "X"  # private attributes (odd groups), creators included
    for mask, value, code in MASKED_GROUPS:
        if tag & mask == value:
            return code
    return None


def resolve_action(tag: int, vr: str) -> str:
    """The one action (``X``, ``Z``, ``D``, ``C``, ``U`` or ``K``) taken for an attribute, at any level.

    Args:
        tag: The attribute's tag as an int.
        vr: Its value representation.

    Returns:
        The table's action with its composite codes resolved and the rules beyond the table applied (listed in
        :mod:`diagnosis.ingest.deid`).
    """
    if tag in PSEUDONYMISED:
        return "D"
    code = action_for_tag(tag)
    if code is None:
        if tag >> 16 == PATIENT_GROUP or tag & 0xFFFF == 0 or not dictionary_has_tag(tag):
            return "X"  # patient module beyond the table, group lengths, attributes nobody can vet
        if vr in FREE_TEXT_VRS or (vr == "UN" and tag not in PIXEL_TAGS):
            return "X"
        return {"PN": "Z", "UI": "U", "DA": "C", "DT": "C", "TM": "C"}.get(vr, "K")
    if vr in TEMPORAL_VRS and code != "X" and tag >> 16 != PATIENT_GROUP:
        return "C"  # Retain Longitudinal Temporal Information with Modified Dates option
    if code == "D":
        return "X" if vr in BINARY_VRS else "D"
    return {"Z/D": "Z", "X/Z": "Z", "X/Z/D": "Z", "X/D": "X", "X/Z/U*": "U"}.get(code, code)
